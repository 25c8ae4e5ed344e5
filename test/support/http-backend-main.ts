// Child process of HttpBackendProcess: serves GET /readyz (200) and any other path (the id).
// Usage: bun http-backend-main.ts ID PORT; prints the bound port on stdout.
const [id, portText] = process.argv.slice(2);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(portText ?? 0),
  fetch: (request) => new Response(new URL(request.url).pathname === "/readyz" ? "ok" : String(id)),
});
process.stdout.write(`${server.port}\n`);

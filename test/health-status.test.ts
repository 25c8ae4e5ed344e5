import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HttpBackend } from "./support/http-backend.ts";
import { BINARY, TinylbProcess } from "./support/tinylb-process.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

async function status(socket: string): Promise<{ code: number; stdout: string }> {
  const child = Bun.spawn([BINARY, "status", "--admin", `unix:${socket}`], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);

  return { code, stdout };
}

function adminGet(socket: string, path: string): Promise<Response> {
  return fetch(`http://localhost${path}`, { unix: socket } as RequestInit);
}

test("tinylb reports health in status, metrics and readyz", async () => {
  const [a, b] = ["a", "b"].map((id) => new HttpBackend(id)) as [HttpBackend, HttpBackend];
  cleanup.push(() => [a, b].forEach((backend) => backend.stop()));
  a.readyStatus = 503;
  const dir = mkdtempSync(join(tmpdir(), "tinylb-health-status-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "admin.sock");
  const tinylb = TinylbProcess.start([
    "--listen", "127.0.0.1:0",
    "--admin", `unix:${socket}`,
    "--backend", `a=${a.target}`,
    "--backend", `b=${b.target}`,
    "--probe", "http", "--probe-path", "/readyz", "--probe-interval", "100ms",
  ]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog(/backend is unhealthy .*backend=a/);

  const table = await status(socket);
  expect(table.code).toBe(0);
  // The process header (two lines and a blank one) comes before the table.
  const rows = table.stdout.split("\n").slice(3);
  expect(rows[1]).toMatch(/^a\s.*\sunhealthy\s+enabled$/);
  expect(rows[2]).toMatch(/^b\s.*\shealthy\s+enabled$/);
  expect(table.stdout).toContain('Unhealthy: "a": http GET /readyz failed 3 times in a row: GET /readyz returned status 503, expected 200');
  expect(table.stdout).not.toContain("Degraded");

  const backends = (await (await adminGet(socket, "/v1/backends")).json()) as { degraded: boolean; backends: { id: string; healthy: boolean }[] };
  expect(backends.degraded).toBe(false);
  expect(backends.backends.map((backend) => [backend.id, backend.healthy])).toEqual([
    ["a", false],
    ["b", true],
  ]);
  const metrics = await (await adminGet(socket, "/metrics")).text();
  expect(metrics).toContain('tinylb_backend_healthy{backend="a"} 0\n');
  expect(metrics).toContain('tinylb_backend_healthy{backend="b"} 1\n');
  expect(metrics).toContain("tinylb_degraded 0\n");
  expect(await (await adminGet(socket, "/readyz")).json()).toEqual({ status: "ready", backends: 2 });

  b.readyStatus = 503;
  await tinylb.waitForLog("every enabled backend is unhealthy or pending; degraded");

  const readyz = await adminGet(socket, "/readyz");
  expect(readyz.status).toBe(200);
  expect(await readyz.json()).toEqual({ status: "degraded", backends: 2, warning: "every enabled backend is unhealthy or pending; each is tried anyway" });
  expect(await (await adminGet(socket, "/metrics")).text()).toContain("tinylb_degraded 1\n");
  expect((await status(socket)).stdout).toContain("Degraded: every enabled backend is unhealthy or pending, so each is tried anyway");
});

test("tinylb applies new probe settings on reload", async () => {
  const a = new HttpBackend("a");
  cleanup.push(() => a.stop());
  a.readyStatus = 503;
  const dir = mkdtempSync(join(tmpdir(), "tinylb-health-reload-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "tinylb.yaml");
  const write = (path: string): void =>
    writeFileSync(config, [`listen: 127.0.0.1:0`, `probe: { kind: http, path: ${path}, interval: 100ms, rise: 1, fall: 1 }`, "backends:", `  - { id: a, target: "${a.target}" }`].join("\n"));
  write("/readyz");
  const tinylb = TinylbProcess.start(["--config", config, "--no-watch-config"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog(/backend is unhealthy .*backend=a/);

  // Every path but /readyz returns 200, so the new probe passes.
  write("/livez");
  tinylb.signal("SIGHUP");

  await tinylb.waitForLog(/backend is healthy .*backend=a .*cause="http GET \/livez passed"/);
});

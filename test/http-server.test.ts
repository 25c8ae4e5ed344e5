import { afterEach, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { json } from "../src/admin-request.ts";
import { type Fetch, type HttpListenAddress, HttpServer } from "../src/http-server.ts";
import { LogLines } from "./support/log-lines.ts";
import { rawBody, rawHttpExchange, rawStatus } from "./support/raw-http.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor, within } from "./support/wait.ts";

const directory = tempDirectory("tinylb-http-server-");

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const REACHED = "test server connection cap reached; new connections are closed at accept";
const BELOW = "test server connections are below half the cap again";

/** A raw client socket with what it received and whether the server closed it. */
interface RawClient {
  socket: Socket<undefined>;
  received: () => string;
  closed: () => boolean;
}

/**
 * The start of a request, without the blank line that ends its headers. Over TCP, Bun 1.4.4
 * accepts a connection only once its first bytes arrive, or after a few seconds without any
 * (until then it waits in the kernel), so a client sends this to count against the cap at once.
 */
const PARTIAL_REQUEST = "GET /healthz HTTP/1.1\r\nHost: x\r\n";

/** Connects a raw client to `address`, and writes `firstBytes` when given. */
async function connectRaw(address: HttpListenAddress, firstBytes?: string): Promise<RawClient> {
  let received = "";
  let closed = false;
  const handler = {
    data: (_socket: unknown, chunk: Buffer) => {
      received += chunk.toString("latin1");
    },
    close: () => {
      closed = true;
    },
    error: () => {},
  };
  const socket = "path" in address ? await Bun.connect({ unix: address.path, socket: handler }) : await Bun.connect({ hostname: address.host, port: address.port, socket: handler });
  cleanup.push(() => socket.terminate());
  if (firstBytes !== undefined) {
    socket.write(firstBytes);
  }

  return { socket, received: () => received, closed: () => closed };
}

interface Started {
  http: HttpServer;
  log: LogLines;
  /** The bound address, with the real port on TCP. */
  address: HttpListenAddress;
}

/** Starts an HttpServer named "test server" on `transport` with the given cap and handler. */
async function startServer(transport: "tcp" | "unix", maxConnections: number, fetch: Fetch): Promise<Started> {
  const log = new LogLines();
  const requested: HttpListenAddress = transport === "tcp" ? { host: "127.0.0.1", port: 0 } : { path: join(directory, `${crypto.randomUUID()}.sock`) };
  const http = await HttpServer.listen(requested, { subject: "test server", maxConnections, fetch, log: log.logger });
  cleanup.push(() => http.stop());
  const address = "path" in requested ? requested : { host: "127.0.0.1", port: http.port! };

  return { http, log, address };
}

/** Converts `address` to the `Address` that rawHttpExchange takes. */
function rawAddress(address: HttpListenAddress): { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number } {
  return "path" in address ? { kind: "unix", path: address.path } : { kind: "tcp", ...address };
}

function countOpenDescriptors(): number {
  return readdirSync("/proc/self/fd").length;
}

const healthz: Fetch = async () => json(200, { status: "ok" });

describe.each(["tcp", "unix"] as const)("HttpServer over %s", (transport) => {
  test("closes a connection over the cap at accept", async () => {
    const { http, log, address } = await startServer(transport, 4, healthz);
    const held: RawClient[] = [];
    for (let i = 0; i < 4; i++) {
      held.push(await connectRaw(address, PARTIAL_REQUEST));
    }
    held[0]!.socket.write("\r\n");
    await waitFor("a response on a held connection", () => held[0]!.received().startsWith("HTTP/1.1 200 "));

    const over = [await connectRaw(address, PARTIAL_REQUEST), await connectRaw(address, PARTIAL_REQUEST), await connectRaw(address, PARTIAL_REQUEST)];

    await waitFor("the connections over the cap to close", () => over.every((client) => client.closed()));
    expect(over.map((client) => client.received())).toEqual(["", "", ""]);
    expect(held.map((client) => client.closed())).toEqual([false, false, false, false]);
    expect(http.rejectedConnections).toBe(3);
    expect(log.messages()).toEqual([REACHED]);
    expect(log.withMessage(REACHED)[0]).toMatchObject({ level: "warn", maxConnections: 4 });
  });

  test("serves again once connections close", async () => {
    const { http, log, address } = await startServer(transport, 4, healthz);
    const held: RawClient[] = [];
    for (let i = 0; i < 4; i++) {
      held.push(await connectRaw(address, PARTIAL_REQUEST));
    }
    await waitFor("the held connections to be accepted", () => http.openConnections === 4);
    const over = await connectRaw(address, PARTIAL_REQUEST);
    await waitFor("the connection over the cap to close", () => over.closed());

    for (const client of held) {
      client.socket.end();
    }
    await waitFor("the info line", () => log.withMessage(BELOW).length === 1);
    const response = await rawHttpExchange(rawAddress(address), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

    expect(rawStatus(response)).toBe(200);
    expect(log.messages()).toEqual([REACHED, BELOW]);
    expect(log.withMessage(BELOW)[0]).toMatchObject({ level: "info", rejected: 1 });
    expect(http.rejectedConnections).toBe(1);
  });

  test("rejected connections release their descriptors", async () => {
    const { http, address } = await startServer(transport, 2, healthz);
    const held = [await connectRaw(address, PARTIAL_REQUEST), await connectRaw(address, PARTIAL_REQUEST)];
    await waitFor("the held connections to be accepted", () => http.openConnections === 2);
    const before = countOpenDescriptors();

    const over: RawClient[] = [];
    for (let i = 0; i < 30; i++) {
      over.push(await connectRaw(address, PARTIAL_REQUEST));
    }
    await waitFor("the connections over the cap to close", () => over.every((client) => client.closed()));

    // This process has both ends open, so a descriptor the server kept would show here.
    await waitFor("the descriptors to be released", () => countOpenDescriptors() <= before);
    expect(held.map((client) => client.closed())).toEqual([false, false]);
  });

  test("stop closes open requests", async () => {
    const never = Promise.withResolvers<Response>();
    const { http, address } = await startServer(transport, 4, () => never.promise);
    const client = await connectRaw(address, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    const idle = await connectRaw(address, PARTIAL_REQUEST);
    await waitFor("both connections to be accepted", () => http.openConnections === 2);

    await within("stop", http.stop(), 5000);

    await waitFor("both connections to close", () => client.closed() && idle.closed());
    await expect(connectRaw(address)).rejects.toThrow();
    never.resolve(json(200, {}));
  });

  test.each([
    ["a request line that is not HTTP", "GARBAGE\r\n\r\n", 400, "400 Bad Request: malformed HTTP request\n"],
    ["an invalid Content-Length", "PUT /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "400 Bad Request: malformed HTTP request\n"],
    ["headers over the size limit", `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(32 * 1024)}\r\n\r\n`, 431, "431 Request Header Fields Too Large\n"],
  ])("rejects %s with a plain-text body", async (_case, request, status, body) => {
    const { address } = await startServer(transport, 4, healthz);

    // rawHttpExchange resolves once the server closed the connection.
    const response = await rawHttpExchange(rawAddress(address), request);

    expect(rawStatus(response)).toBe(status);
    expect(rawBody(response)).toBe(body);
    expect(response.toLowerCase()).toContain("content-type: text/plain; charset=utf-8\r\n");
    expect(response.toLowerCase()).toContain(`content-length: ${body.length}\r\n`);
    expect(response.toLowerCase()).toContain("connection: close\r\n");
  });

  test("passes the client address", async () => {
    const clients: string[] = [];
    const { address } = await startServer(transport, 4, async (_request, client) => {
      clients.push(client);

      return json(200, {});
    });

    await rawHttpExchange(rawAddress(address), "GET / HTTP/1.0\r\n\r\n");

    expect(clients).toEqual([transport === "tcp" ? "127.0.0.1" : "unix"]);
  });
});

test("HttpServer release frees the port and lets a request finish", async () => {
  const pending = Promise.withResolvers<Response>();
  let arrived = false;
  const { http, address } = await startServer("tcp", 4, () => {
    arrived = true;

    return pending.promise;
  });
  const port = (address as { port: number }).port;
  const answer = fetch(`http://127.0.0.1:${port}/slow`);
  await waitFor("the request to arrive", () => arrived);

  http.release();
  const successor = await HttpServer.listen({ host: "127.0.0.1", port }, { subject: "successor", maxConnections: 4, fetch: healthz, log: new LogLines().logger });
  cleanup.push(() => successor.stop());
  pending.resolve(json(200, { finished: true }));

  const response = await within("the open request", answer, 5000);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ finished: true });
  expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
});

test("HttpServer answers an unread body and closes", async () => {
  const { address } = await startServer("tcp", 4, async () => json(405, { error: "no body here" }));
  const port = (address as { port: number }).port;

  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { method: "PUT", body: "x".repeat(4 * 1024 * 1024) });

  expect(response.status).toBe(405);
  expect(response.headers.get("connection")).toBe("close");
  expect(await response.json()).toEqual({ error: "no body here" });
});

test("HttpServer keeps a connection alive between requests", async () => {
  const { address } = await startServer("tcp", 4, healthz);
  const client = await connectRaw(address);

  client.socket.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  await waitFor("the first response", () => client.received().includes('{"status":"ok"}'));
  client.socket.write("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  await waitFor("the second response", () => client.received().split("HTTP/1.1 200 ").length === 3);

  expect(client.received().toLowerCase()).toContain("content-length: 16\r\n");
  expect(client.closed()).toBe(false);
});

test("HttpServer closes a slow request after the header timeout", async () => {
  const { address } = await startServer("tcp", 4, healthz);
  const client = await connectRaw(address);
  const startedAt = performance.now();

  // A slowloris client: a header byte every 500 ms, never the end of the headers.
  const line = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(100);
  for (let i = 0; i < line.length && !client.closed() && performance.now() - startedAt < 15_000; i++) {
    client.socket.write(line[i]!);
    await Bun.sleep(500);
  }

  const closedAfter = performance.now() - startedAt;
  expect(client.closed()).toBe(true);
  // The idle and header timeouts are 10 s, checked every second.
  expect(closedAfter).toBeGreaterThan(9_000);
  expect(closedAfter).toBeLessThan(13_000);
}, 20_000);

test("HttpServer closes a stalled request body quietly", async () => {
  // The handler reads the body, which never arrives whole: the idle timeout closes the
  // connection, and the failed read is the client's doing, not a bug of the server.
  const readBody: Fetch = async (request) => json(200, { length: (await request.text()).length });
  const { log, address } = await startServer("unix", 4, readBody);
  const client = await connectRaw(address, "PUT /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"backends\":");

  await waitFor("the idle timeout to close the connection", () => client.closed(), 20_000);
  await Bun.sleep(100);
  expect(log.messages().filter((message) => message.startsWith("invariant violated"))).toEqual([]);
  expect(log.withMessage("HTTP request abandoned: the connection closed before the request arrived whole")).toHaveLength(1);
}, 30_000);

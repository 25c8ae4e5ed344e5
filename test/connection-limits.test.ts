import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { ConnectionLimits } from "../src/connection-limits.ts";
import { Logger } from "../src/logger.ts";
import { Server } from "../src/server.ts";
import type { ServerOptions } from "../src/server-options.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { EchoBackend, FaultProcess } from "./support/fault-peers.ts";
import { FullBacklogListener } from "./support/full-backlog.ts";
import { BINARY } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

async function startServer(ids: string[], limits: Partial<ServerOptions>, lines: string[] = []) {
  const backends = ids.map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const logger = new Logger({ sink: (line) => lines.push(line) });
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], logger, ...limits });
  server.applySet(new BackendSet(backends.map((backend) => createBackend(backend.id, backend.target))));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0 };
}

async function served(port: number): Promise<TestClient> {
  const client = await TestClient.connect(port);
  cleanup.push(() => client.close());
  await waitFor("greeting", () => client.firstLine !== "");

  return client;
}

test("ConnectionLimits counts reservations per id", () => {
  const limits = new ConnectionLimits({ maxConnectionsPerBackend: 2 }, new Logger({ sink: () => {} }));
  expect(limits.tryReserve("a")).toBe(true);
  expect(limits.tryReserve("a")).toBe(true);
  expect(limits.tryReserve("a")).toBe(false);
  expect(limits.count("a")).toBe(2);
  expect(limits.tryReserve("b")).toBe(true);
  limits.release("a");
  expect(limits.count("a")).toBe(1);
  limits.release("a");
  expect(() => limits.release("a")).toThrow("invariant violated");
});

test("ConnectionLimits counts without a cap only for leastconn", () => {
  const limits = new ConnectionLimits({}, new Logger({ sink: () => {} }));
  expect(limits.tryReserve("a")).toBe(true);
  expect(limits.count("a")).toBe(0);

  // Turned on with two connections to a and one to b open in this thread.
  limits.startCounting(["a", "a", "b"]);
  expect(limits.count("a")).toBe(2);
  expect(limits.count("b")).toBe(1);
  expect(limits.tryReserve("a")).toBe(true);
  expect(limits.count("a")).toBe(3);
  limits.release("a");

  // Turned off with the same connections open: nothing stays counted, and later releases count nothing.
  limits.stopCounting(["a", "a", "b"]);
  expect(limits.count("a")).toBe(0);
  expect(limits.count("b")).toBe(0);
  limits.release("a");
  expect(limits.count("a")).toBe(0);
});

test("ConnectionLimits keeps counting under a cap", () => {
  const limits = new ConnectionLimits({ maxConnectionsPerBackend: 2 }, new Logger({ sink: () => {} }));
  expect(limits.tryReserve("a")).toBe(true);

  // The cap needs the counts, so leastconn turned on and off changes nothing.
  limits.startCounting(["a"]);
  expect(limits.count("a")).toBe(1);
  limits.stopCounting(["a"]);
  expect(limits.count("a")).toBe(1);
});

test("ConnectionLimits rate-limits its warning", () => {
  const lines: string[] = [];
  const limits = new ConnectionLimits({ maxConnections: 1 }, new Logger({ sink: (line) => lines.push(line) }), 60_000);
  for (let i = 0; i < 50; i++) {
    limits.reject("global", `127.0.0.1:${1000 + i}`);
  }
  expect(limits.rejectedGlobal).toBe(50);
  expect(lines.length).toBe(1);
  expect(lines[0]).toContain("connection limit reached; closing client; raise --max-connections (maxConnections) if tinylb and its backends can take more");
});

test("ConnectionLimits per-backend warning names the fix", () => {
  const lines: string[] = [];
  const limits = new ConnectionLimits({ maxConnectionsPerBackend: 1 }, new Logger({ sink: (line) => lines.push(line) }), 60_000);
  limits.reject("backend", "127.0.0.1:1000");

  expect(limits.rejectedBackend).toBe(1);
  expect(lines[0]).toContain("every backend is at its connection limit; closing client; add backends or raise --max-connections-per-backend (maxConnectionsPerBackend)");
});

test("ConnectionLimits splits caps between threads", () => {
  const lines: string[] = [];
  const limits = new ConnectionLimits({ maxConnections: 3, maxConnectionsPerBackend: 5, threads: 2 }, new Logger({ sink: (line) => lines.push(line) }), 0);

  expect(limits.maxConnections).toBe(2);
  expect(limits.maxConnectionsPerBackend).toBe(3);
  expect(limits.admits(1)).toBe(true);
  expect(limits.admits(2)).toBe(false);

  limits.reject("global", "127.0.0.1:1000");
  limits.reject("backend", "127.0.0.1:1001");
  // The warnings name the cap as configured, then this thread's share.
  expect(lines[0]).toContain("maxConnections=3 perThread=2 threads=2");
  expect(lines[1]).toContain("maxConnectionsPerBackend=5 perThread=3 threads=2");
});

test("ConnectionLimits keeps the whole global cap with a shared count", () => {
  const lines: string[] = [];
  const limits = new ConnectionLimits({ maxConnections: 3, maxConnectionsPerBackend: 5, threads: 2, globalCountShared: true }, new Logger({ sink: (line) => lines.push(line) }), 0);

  expect(limits.maxConnections).toBe(3);
  expect(limits.maxConnectionsPerBackend).toBe(3);

  limits.reject("global", "127.0.0.1:1000");
  limits.reject("backend", "127.0.0.1:1001");
  expect(lines[0]).toContain("maxConnections=3");
  expect(lines[0]).not.toContain("perThread");
  expect(lines[1]).toContain("maxConnectionsPerBackend=5 perThread=3 threads=2");
});

test("ConnectionLimits names only the cap with one thread", () => {
  const lines: string[] = [];
  const limits = new ConnectionLimits({ maxConnections: 3 }, new Logger({ sink: (line) => lines.push(line) }));
  limits.reject("global", "127.0.0.1:1000");

  expect(lines[0]).toContain("maxConnections=3");
  expect(lines[0]).not.toContain("perThread");
});

test("Server closes clients over the global cap at once", async () => {
  const lines: string[] = [];
  const { server, port } = await startServer(["a", "b"], { maxConnections: 3 }, lines);
  const open = [await served(port), await served(port), await served(port)];

  const excess = await TestClient.connect(port);
  cleanup.push(() => excess.close());
  await waitFor("excess client to be closed", () => excess.ended || excess.closed, 2000);
  expect(excess.received).toBe("");
  expect(server.limits.rejectedGlobal).toBe(1);
  expect(lines.filter((line) => line.includes("connection limit reached")).length).toBe(1);

  open[0]!.close();
  await waitFor("one connection to close", () => server.activeCount === 2);
  const next = await served(port);
  expect(["a", "b"]).toContain(next.firstLine);
  for (const client of [...open, next]) {
    client.close();
  }
  await waitFor("pool to empty", () => server.activeCount === 0);
});

test("Server skips a backend at its cap", async () => {
  const { server, port } = await startServer(["a", "b"], { maxConnectionsPerBackend: 2 });
  const seen: string[] = [];
  const clients: TestClient[] = [];
  for (let i = 0; i < 4; i++) {
    const client = await served(port);
    clients.push(client);
    seen.push(client.firstLine);
  }
  expect(seen.sort()).toEqual(["a", "a", "b", "b"]);

  const excess = await TestClient.connect(port);
  cleanup.push(() => excess.close());
  await waitFor("excess client to be closed", () => excess.ended || excess.closed, 2000);
  expect(excess.received).toBe("");
  expect(server.limits.rejectedBackend).toBe(1);

  clients.find((client) => client.firstLine === "b")!.close();
  const target = (id: string): string => server.set.get(id)!.target;
  await waitFor("a connection to b to close", () => server.limits.count(target("b")) === 1);
  const next = await served(port);
  clients.push(next);
  expect(next.firstLine).toBe("b");

  for (const client of clients) {
    client.close();
  }
  await waitFor("pool to empty", () => server.activeCount === 0);
  await waitFor("reservations to drop to zero", () => server.limits.count(target("a")) === 0 && server.limits.count(target("b")) === 0);
});

test("Server releases reservations of failed dials", async () => {
  const { server, port } = await startServer(["a"], { maxConnectionsPerBackend: 1 });
  const dead = createBackend("dead", "127.0.0.1:1");
  server.applySet(new BackendSet([dead, ...server.set.backends]));
  for (let i = 0; i < 6; i++) {
    const client = await served(port);
    expect(client.firstLine).toBe("a");
    client.close();
    await waitFor("connection to close", () => server.activeCount === 0);
  }
  expect(server.limits.count(dead.target)).toBe(0);
  expect(server.limits.count(server.set.get("a")!.target)).toBe(0);
  expect(server.limits.rejectedBackend).toBe(0);
});

test("Server caps per target after move", async () => {
  const { server, port } = await startServer(["a"], { maxConnectionsPerBackend: 1, onRemoval: "drain", drainTimeoutMs: 60_000 });
  const first = await served(port);
  expect(first.firstLine).toBe("a");

  // "a" moves to a new target; its old connection drains and still counts for the old target.
  const moved = TestBackend.echo("a-moved");
  cleanup.push(() => moved.stop());
  const oldTarget = server.set.get("a")!.target;
  server.applySet(new BackendSet([createBackend("a", moved.target)]));
  const next = await served(port);
  expect(next.firstLine).toBe("a-moved");
  expect(server.limits.count(oldTarget)).toBe(1);
  expect(server.limits.count(moved.target)).toBe(1);

  for (const client of [first, next]) {
    client.close();
  }
  await waitFor("both reservations to drop", () => server.limits.count(oldTarget) === 0 && server.limits.count(moved.target) === 0);
});

test("tinylb reports rejected clients in /metrics", async () => {
  const backend = new EchoBackend();
  const folder = mkdtempSync(join(tmpdir(), "tinylb-limits-"));
  const adminPath = join(folder, "admin.sock");
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--max-connections", "1", "--admin", `unix:${adminPath}`]);
  try {
    const port = await tinylb.port();
    await waitFor("the admin API", () => tinylb.stderr.includes("admin API listening"));
    const held = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    await waitFor("held connection to reach the backend", () => backend.peers.length === 1);
    const excess = { closed: false };
    await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close: () => void (excess.closed = true), error() {} } });
    await waitFor("excess client to be closed", () => excess.closed);

    const metrics = await (await fetch("http://localhost/metrics", { unix: adminPath })).text();
    expect(metrics).toContain('tinylb_clients_rejected_total{limit="global"} 1');
    expect(metrics).toContain('tinylb_clients_rejected_total{limit="backend"} 0');
    expect(metrics).toContain("tinylb_accept_pauses_total 0");
    held.end();
  } finally {
    backend.stop();
    rmSync(folder, { recursive: true, force: true });
  }
});

test("status and metrics count dialing clients", async () => {
  const backend = new EchoBackend();
  const silent = await FullBacklogListener.start();
  const folder = mkdtempSync(join(tmpdir(), "tinylb-limits-"));
  const adminPath = join(folder, "admin.sock");
  const args = ["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--backend", `silent=${silent.target}`, "--connect-timeout", "60s"];
  await using tinylb = new FaultProcess([...args, "--max-connections", "5", "--admin", `unix:${adminPath}`]);
  const clients: Socket<undefined>[] = [];
  try {
    const port = await tinylb.port();
    await waitFor("the admin API", () => tinylb.stderr.includes("admin API listening"));
    // The rotation sends one client to "echo" and the other to "silent", whose connect hangs.
    for (let i = 0; i < 2; i++) {
      clients.push(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } }));
    }
    await waitFor("the first client to reach the backend", () => backend.peers.length === 1);
    let metrics = "";
    await waitFor("both clients to be counted", async () => {
      metrics = await (await fetch("http://localhost/metrics", { unix: adminPath })).text();

      return metrics.includes("\ntinylb_connections_open 2\n");
    });

    expect(metrics).toContain("\ntinylb_connections_open 2\n");
    expect(metrics).toContain("\ntinylb_connections_max 5\n");
    expect(metrics).toContain('tinylb_backend_connections_active{backend="silent"} 0');

    const status = Bun.spawnSync([BINARY, "status", "--admin", `unix:${adminPath}`]);
    expect(status.exitCode).toBe(0);
    expect(status.stdout.toString()).toContain("\nConnections: 2 open or dialing a backend; cap 5 (--max-connections, maxConnections)\n");
  } finally {
    for (const client of clients) {
      client.terminate();
    }
    backend.stop();
    await silent.stop();
    rmSync(folder, { recursive: true, force: true });
  }
});

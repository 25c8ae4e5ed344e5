import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { HttpBackend } from "./support/http-backend.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Connections opened per test; SO_REUSEPORT hashes each to one of two threads. */
const CLIENTS = 24;

function writeConfig(path: string, backends: TestBackend[]): void {
  const lines = backends.map((backend) => `  - { id: ${backend.id}, target: "${backend.target}" }`);
  writeFileSync(path, `listen: 127.0.0.1:0\nbackends:\n${lines.join("\n")}\n`);
}

/** Echo backends, a temporary folder, and a config file in it that names the first `configured` backends. */
function scenario(ids: string[], configured = ids.length): { backends: TestBackend[]; config: string; adminPath: string } {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-workers-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const backends = ids.map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const config = join(dir, "tinylb.yaml");
  writeConfig(config, backends.slice(0, configured));

  return { backends, config, adminPath: join(dir, "admin.sock") };
}

/** Starts dist/tinylb with two threads on `config`, plus `flags`, and returns it with its bound port. */
async function startWorkers(config: string, flags: string[]): Promise<{ tinylb: TinylbProcess; port: number }> {
  const tinylb = TinylbProcess.start(["--config", config, "--workers", "2", ...flags, "--no-watch-config", "--shutdown-grace", "1s"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr) };
}

/** Connects CLIENTS clients one after another; they are terminated after the test. */
async function connectClients(port: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    clients.push(await TestClient.connect(port));
  }
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));

  return clients;
}

async function metric(adminPath: string, line: RegExp): Promise<number> {
  const response = await fetch("http://localhost/metrics", { unix: adminPath } as RequestInit);
  const match = line.exec(await response.text());

  return match === null ? Number.NaN : Number(match[1]);
}

test("workers share the port, follow set changes and add up counters", async () => {
  const { backends, config, adminPath } = scenario(["a", "b"]);
  const { tinylb, port } = await startWorkers(config, ["--admin", `unix:${adminPath}`, "--log-level", "debug"]);

  const clients = await connectClients(port);
  await waitFor("every greeting", () => clients.every((client) => client.firstLine !== ""));

  // Both threads accepted: worker lines carry worker=1, main-thread lines carry no worker field.
  const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
  expect(opened.length).toBe(CLIENTS);
  expect(opened.filter((line) => line.includes("worker=1")).length).toBeGreaterThan(0);
  expect(opened.filter((line) => !line.includes("worker=")).length).toBeGreaterThan(0);
  // Connection ids are unique over both threads.
  const ids = opened.map((line) => / conn=(\d+) /.exec(line)?.[1]);
  expect(new Set(ids).size).toBe(CLIENTS);

  // Removing a: its connections end in both threads, b's stay open and keep relaying.
  writeConfig(config, [backends[1]!]);
  tinylb.signal("SIGHUP");
  const toA = clients.filter((client) => client.firstLine === "a");
  const toB = clients.filter((client) => client.firstLine === "b");
  expect(toA.length + toB.length).toBe(CLIENTS);
  await waitFor("a's clients to be closed", () => toA.every((client) => client.ended || client.closed), 10_000);
  for (const client of toB) {
    client.socket.write("still here\n");
  }
  await waitFor("echo through b", () => toB.every((client) => client.received.includes("still here")));
  expect(toB.every((client) => !client.closed)).toBe(true);

  // Counters of both threads add up on /metrics once the workers sent their deltas.
  await waitFor("accepted clients of both threads on /metrics", async () => (await metric(adminPath, /^tinylb_clients_accepted_total (\d+)$/m)) === CLIENTS, 10_000);
  const totalA = await metric(adminPath, /^tinylb_backend_connections_total\{backend="a"\} (\d+)$/m);
  const totalB = await metric(adminPath, /^tinylb_backend_connections_total\{backend="b"\} (\d+)$/m);
  expect(totalA).toBe(toA.length);
  expect(totalB).toBe(toB.length);

  expect(await tinylb.stop()).toBe(0);
  expect(toB.every((client) => client.ended || client.closed)).toBe(true);
});

/** Sends one HTTP/1.0 request per connection through tinylb and returns each response's body: the id of the backend that served it. */
async function servedBy(port: number, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const client = await TestClient.connect(port);
    client.socket.write("GET / HTTP/1.0\r\nHost: tinylb\r\n\r\n");
    await waitFor("an HTTP response through tinylb", () => client.ended || client.closed);
    client.socket.terminate();
    ids.push(client.received.slice(client.received.indexOf("\r\n\r\n") + 4));
  }

  return ids;
}

/** Log lines of connections opened in relay worker 1 to backend `id`. */
function workerLines(stderr: string, id: string): string[] {
  return stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("worker=1") && line.includes(`backend=${id} `));
}

test("workers follow the main thread's probes", async () => {
  const [a, b] = ["a", "b"].map((id) => new HttpBackend(id)) as [HttpBackend, HttpBackend];
  cleanup.push(() => [a, b].forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start([
    "--listen", "127.0.0.1:0",
    "--backend", `a=${a.target}`,
    "--backend", `b=${b.target}`,
    "--probe", "http", "--probe-path", "/readyz", "--probe-interval", "100ms",
    "--workers", "2", "--log-level", "debug", "--shutdown-grace", "1s",
  ]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  // a still accepts connections and serves "/", so only the probe result can take it out.
  a.readyStatus = 503;
  await tinylb.waitForLog(/backend is unhealthy .*backend=a/);
  const whileDown = await servedBy(port, CLIENTS);
  expect(whileDown.filter((id) => id === "a")).toEqual([]);
  expect(whileDown.filter((id) => id === "b").length).toBe(CLIENTS);
  expect(workerLines(tinylb.stderr, "b").length).toBeGreaterThan(0);

  a.readyStatus = 200;
  await tinylb.waitForLog(/backend is healthy .*backend=a/);
  const afterRecovery = await servedBy(port, CLIENTS);
  expect(afterRecovery.filter((id) => id === "a").length).toBeGreaterThan(0);
  expect(workerLines(tinylb.stderr, "a").length).toBeGreaterThan(0);

  expect(await tinylb.stop()).toBe(0);
}, 60_000);

test("workers report dial failures to the main thread", async () => {
  const backends = ["a", "b"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start([
    "--listen", "127.0.0.1:0",
    "--backend", `a=${backends[0]!.target}`,
    "--backend", `b=${backends[1]!.target}`,
    "--workers", "2", "--log-level", "debug", "--shutdown-grace", "1s",
  ]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  // With a stopped, the first dial to it fails in some thread; the main thread's back-off then skips it in every thread.
  backends[0]!.stop();
  const clients: TestClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const client = await TestClient.connect(port);
    clients.push(client);
    await waitFor("a greeting", () => client.firstLine !== "" || client.closed);
  }
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
  expect(clients.every((client) => client.firstLine === "b")).toBe(true);
  await tinylb.waitForLog(/backend is unhealthy .*backend=a/);

  // Only the main thread's checker decides health, whichever thread's dial failed; a worker
  // with a checker of its own would log its flip with worker=1.
  const lines = tinylb.stderr.split("\n");
  const flips = lines.filter((line) => line.includes("backend is unhealthy") && line.includes("backend=a"));
  expect(flips.length).toBe(1);
  expect(flips[0]).not.toContain("worker=");
  expect(lines.filter((line) => /dial failed .*backend=a /.test(line)).length).toBeGreaterThan(0);
}, 60_000);

test("status and metrics add up every thread", async () => {
  const { config, adminPath } = scenario(["a", "b"]);
  const { tinylb, port } = await startWorkers(config, ["--admin", `unix:${adminPath}`, "--log-level", "debug"]);

  const clients = await connectClients(port);
  await waitFor("every greeting", () => clients.every((client) => client.firstLine !== ""));
  const inWorker = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("worker=1"));
  expect(inWorker.length).toBeGreaterThan(0);
  expect(inWorker.length).toBeLessThan(CLIENTS);

  const toA = clients.filter((client) => client.firstLine === "a").length;
  const active = async (id: string): Promise<number> => await metric(adminPath, new RegExp(`^tinylb_backend_connections_active\\{backend="${id}"\\} (\\d+)$`, "m"));
  await waitFor("open connections of both threads on /metrics", async () => (await active("a")) + (await active("b")) === CLIENTS, 10_000);
  expect(await active("a")).toBe(toA);
  expect(await active("b")).toBe(CLIENTS - toA);

  const response = await fetch("http://localhost/v1/backends", { unix: adminPath } as RequestInit);
  const rows = ((await response.json()) as { backends: { id: string; active: number }[] }).backends;
  expect(rows.map((row) => [row.id, row.active])).toEqual([
    ["a", toA],
    ["b", CLIENTS - toA],
  ]);

  // Once every client left, the gauges of both threads fall back to 0.
  clients.forEach((client) => client.socket.end());
  await waitFor("no open connections on /metrics", async () => (await active("a")) + (await active("b")) === 0, 10_000);
  expect(await tinylb.stop()).toBe(0);
}, 60_000);

test("duration histograms add up every thread", async () => {
  const { config, adminPath } = scenario(["a", "b"]);
  const { tinylb, port } = await startWorkers(config, ["--admin", `unix:${adminPath}`, "--log-level", "debug"]);
  const started = performance.now();

  const clients = await connectClients(port);
  await waitFor("every greeting", () => clients.every((client) => client.firstLine !== ""));
  const inWorker = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("worker=1"));
  expect(inWorker.length).toBeGreaterThan(0);
  expect(inWorker.length).toBeLessThan(CLIENTS);
  clients.forEach((client) => client.socket.end());
  const lifetimes = async (): Promise<number> => await metric(adminPath, /^tinylb_connection_duration_seconds_count (\d+)$/m);
  await waitFor("closed connections of both threads on /metrics", async () => (await lifetimes()) === CLIENTS, 10_000);
  const elapsedSeconds = (performance.now() - started) / 1000;

  const toA = clients.filter((client) => client.firstLine === "a").length;
  const connectCount = async (id: string): Promise<number> => await metric(adminPath, new RegExp(`^tinylb_backend_connect_duration_seconds_count\\{backend="${id}"\\} (\\d+)$`, "m"));
  const connectInf = async (id: string): Promise<number> => await metric(adminPath, new RegExp(`^tinylb_backend_connect_duration_seconds_bucket\\{backend="${id}",le="\\+Inf"\\} (\\d+)$`, "m"));
  const connectSum = async (id: string): Promise<number> => await metric(adminPath, new RegExp(`^tinylb_backend_connect_duration_seconds_sum\\{backend="${id}"\\} (\\S+)$`, "m"));
  expect(await connectCount("a")).toBe(toA);
  expect(await connectCount("b")).toBe(CLIENTS - toA);
  expect(await connectInf("a")).toBe(toA);
  expect(await connectInf("b")).toBe(CLIENTS - toA);
  // Dials of one backend overlap, so only each one is bounded by the elapsed time.
  for (const id of ["a", "b"]) {
    expect(await connectSum(id)).toBeGreaterThan(0);
    expect(await connectSum(id)).toBeLessThan((await connectCount(id)) * elapsedSeconds);
  }
  const lifetimeSum = await metric(adminPath, /^tinylb_connection_duration_seconds_sum (\S+)$/m);
  expect(await metric(adminPath, /^tinylb_connection_duration_seconds_bucket\{le="\+Inf"\} (\d+)$/m)).toBe(CLIENTS);
  expect(lifetimeSum).toBeGreaterThan(0);
  expect(lifetimeSum).toBeLessThan(CLIENTS * elapsedSeconds);
  expect(await tinylb.stop()).toBe(0);
}, 60_000);

/**
 * Starts two threads on one echo backend "a" with a cap in `flags`, connects CLIENTS clients,
 * and waits until /metrics counts every rejection of the `limit` cap. Returns the served
 * clients and the worker's rejection warnings.
 */
async function clientsUnderCap(flags: string[], limit: "global" | "backend"): Promise<{ port: number; adminPath: string; served: TestClient[]; rejectedInWorker: string[] }> {
  const { config, adminPath } = scenario(["a"]);
  const { tinylb, port } = await startWorkers(config, [...flags, "--admin", `unix:${adminPath}`, "--log-level", "debug"]);

  const clients = await connectClients(port);
  await waitFor("each client greeted or closed", () => clients.every((client) => client.firstLine !== "" || client.closed || client.ended));
  const served = clients.filter((client) => client.firstLine === "a");
  const rejected = async (): Promise<number> => await metric(adminPath, new RegExp(`^tinylb_clients_rejected_total\\{limit="${limit}"\\} (\\d+)$`, "m"));
  await waitFor("rejections of both threads on /metrics", async () => (await rejected()) === CLIENTS - served.length, 10_000);
  const warning = limit === "global" ? "connection limit reached" : "every backend is at its connection limit";
  const rejectedInWorker = tinylb.stderr.split("\n").filter((line) => line.includes(warning) && line.includes("worker=1"));

  return { port, adminPath, served, rejectedInWorker };
}

test("rejections of every thread reach /metrics", async () => {
  // The threads count their connections together, so a cap of 2 admits 2 over both.
  const { adminPath, served, rejectedInWorker } = await clientsUnderCap(["--max-connections", "2"], "global");

  expect(served).toHaveLength(2);
  expect(rejectedInWorker.length).toBeGreaterThan(0);
  // The open count is the threads' shared one, so it shows the 2 served clients wherever they run.
  expect(await metric(adminPath, /^tinylb_connections_open (\d+)$/m)).toBe(2);
  expect(await metric(adminPath, /^tinylb_connections_max (\d+)$/m)).toBe(2);
}, 60_000);

test("per-backend cap counts every thread", async () => {
  // Split between two threads, a cap of 3 would admit 2 per thread, up to 4 in all.
  const { port, adminPath, served, rejectedInWorker } = await clientsUnderCap(["--max-connections-per-backend", "3"], "backend");

  expect(served).toHaveLength(3);
  expect(rejectedInWorker.length).toBeGreaterThan(0);
  expect(rejectedInWorker[0]).not.toContain("perThread=");
  expect(await metric(adminPath, /^tinylb_backend_connections_max (\d+)$/m)).toBe(3);

  // Once a served client leaves, the next client is served, whichever thread accepts it.
  served[0]!.socket.end();
  await waitFor("the cap to have room", async () => (await metric(adminPath, /^tinylb_connections_open (\d+)$/m)) === 2, 10_000);
  const next = await TestClient.connect(port);
  cleanup.push(() => next.socket.terminate());
  await waitFor("the next client's greeting", () => next.firstLine === "a");
}, 60_000);

test("threads share one rotation, after a set change too", async () => {
  const { backends, config } = scenario(["a", "b", "c", "d", "e", "f"], 3);
  const { tinylb, port } = await startWorkers(config, ["--log-level", "debug"]);

  // Each client waits for its greeting, so the kernel's choice of thread cannot reorder them.
  const greetings = async (count: number): Promise<string[]> => {
    const lines: string[] = [];
    for (let i = 0; i < count; i++) {
      const client = await TestClient.connect(port);
      cleanup.push(() => client.socket.terminate());
      await waitFor("greeting", () => client.firstLine !== "");
      lines.push(client.firstLine);
    }

    return lines;
  };
  // 30 clients, so that the kernel's hash almost surely sends some to each thread (all to one: 2 in 2^30).
  const first = await greetings(30);
  expect(first).toEqual(Array.from({ length: 30 }, (_, index) => ["a", "b", "c"][index % 3]!));
  // Both threads took part, so the order above came from the shared rotation.
  const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
  expect(opened.some((line) => line.includes("worker=1"))).toBe(true);
  expect(opened.some((line) => !line.includes("worker="))).toBe(true);

  writeConfig(config, backends.slice(3));
  tinylb.signal("SIGHUP");
  // The main thread applies the set first; the worker logs it at debug once it has too.
  await tinylb.waitForLog(/backend set changed worker=1 .*added="d=/);
  const afterChange = await greetings(3);
  expect([...afterChange].sort()).toEqual(["d", "e", "f"]);
}, 60_000);

test("workers key of the config file starts relay workers", async () => {
  const { config } = scenario(["a"]);
  writeFileSync(config, `${readFileSync(config, "utf8")}workers: 2\n`);
  const tinylb = TinylbProcess.start(["--config", config, "--no-watch-config"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  expect(tinylb.stderr).toMatch(/relay workers started .*workers=2/);
  expect(tinylb.stderr).toMatch(/tinylb started .*workers=2/);
});

test("unhealthy backend loses connections in every thread", async () => {
  const [a, b] = ["a", "b"].map((id) => new HttpBackend(id)) as [HttpBackend, HttpBackend];
  cleanup.push(() => [a, b].forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start([
    "--listen", "127.0.0.1:0",
    "--backend", `a=${a.target}`,
    "--backend", `b=${b.target}`,
    "--probe", "http", "--probe-path", "/readyz", "--probe-interval", "100ms",
    "--on-unhealthy", "close",
    "--workers", "2", "--log-level", "debug", "--shutdown-grace", "1s",
  ]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  // Kept-alive HTTP/1.1 connections stay open after their first response.
  const clients: TestClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const client = await TestClient.connect(port);
    client.socket.write("GET / HTTP/1.1\r\nHost: tinylb\r\n\r\n");
    clients.push(client);
  }
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
  const bodyOf = (client: TestClient): string => client.received.slice(client.received.indexOf("\r\n\r\n") + 4);
  await waitFor("every response", () => clients.every((client) => bodyOf(client) === "a" || bodyOf(client) === "b"));
  const toA = clients.filter((client) => bodyOf(client) === "a");
  const toB = clients.filter((client) => bodyOf(client) === "b");
  expect(workerLines(tinylb.stderr, "a").length).toBeGreaterThan(0);
  expect(toA.length).toBeLessThan(CLIENTS);

  a.readyStatus = 503;
  await waitFor("a's clients to be closed in both threads", () => toA.every((client) => client.ended || client.closed), 10_000);
  expect(toB.every((client) => !client.ended && !client.closed)).toBe(true);
  const closedLines = (): string[] => tinylb.stderr.split("\n").filter((line) => line.includes("closed connections of unhealthy backend") && line.includes("backend=a"));
  // A thread logs its line after closing, so the line can reach stderr after the clients saw the close.
  await waitFor("a close line from each thread", () => closedLines().length >= 2);
  expect(closedLines().filter((line) => line.includes("worker=1")).length).toBe(1);
  expect(closedLines().filter((line) => !line.includes("worker=")).length).toBe(1);

  clients.forEach((client) => client.socket.end());
  expect(await tinylb.stop()).toBe(0);
}, 60_000);

test("config reload reaches every thread", async () => {
  const { config } = scenario(["a"]);
  const { tinylb, port } = await startWorkers(config, []);

  // Debug lines name each connection, so after the reload both threads write them.
  writeFileSync(config, `logLevel: debug\nconnectTimeout: 2s\nkeepalive: 10s\n${readFileSync(config, "utf8")}`);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("settings changed in the config file applied");
  expect(tinylb.stderr).not.toContain("need a restart");
  expect(tinylb.stderr).toContain("connectTimeout=3s->2s");

  const clients = await connectClients(port);
  await waitFor("every greeting", () => clients.every((client) => client.firstLine === "a"));
  const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
  expect(opened.filter((line) => line.includes("worker=1")).length).toBeGreaterThan(0);
  expect(opened.filter((line) => !line.includes("worker=")).length).toBeGreaterThan(0);

  clients.forEach((client) => client.socket.end());
  expect(await tinylb.stop()).toBe(0);
}, 60_000);

test("workers log set changes once and count threads", async () => {
  const { backends, config } = scenario(["a", "b"], 1);
  const { tinylb } = await startWorkers(config, []);
  writeConfig(config, backends);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/backend set changed .*count=2/);

  const lines = tinylb.stderr.split("\n");
  expect(lines.filter((line) => line.includes("relay workers started"))[0]).toContain("workers=2");
  const changes = lines.filter((line) => line.includes("backend set changed"));
  expect(changes.length).toBe(2);
  expect(changes.every((line) => line.includes("provider=") && !line.includes("worker="))).toBe(true);
  expect(await tinylb.stop()).toBe(0);
}, 60_000);

/**
 * Connects to `port` until a connect succeeds, without a pause, for at most `deadlineMs`.
 * Returns undefined when tinylb exited first, such as on a port another process holds.
 */
async function firstClient(port: number, tinylb: TinylbProcess, deadlineMs: number): Promise<TestClient | undefined> {
  const deadline = performance.now() + deadlineMs;
  while (performance.now() < deadline && tinylb.process.exitCode === null) {
    try {
      return await TestClient.connect(port);
    } catch {
      // Not bound yet.
    }
  }

  return undefined;
}

test("first clients of a start with workers get replies", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const starts = 25;
  const unanswered: string[] = [];

  for (let round = 0; round < starts; round++) {
    // The client must know the port before tinylb binds it, so the port is picked at random.
    // A start that finds it taken exits, and the round moves on to another port.
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    await using tinylb = TinylbProcess.start(["--listen", `127.0.0.1:${port}`, "--backend", `a=${backend.target}`, "--workers", "2"]);
    const first = await firstClient(port, tinylb, 10_000);
    if (first !== undefined) {
      cleanup.push(() => first.socket.terminate());
    }
    // A start that found the port taken exits; the first client then reached the other process.
    const started = await Promise.race([tinylb.waitForLog("tinylb started").then(() => true, () => false), tinylb.process.exited.then(() => false)]);
    if (first === undefined || !started) {
      continue;
    }
    const clients = [first, ...(await Promise.all(Array.from({ length: 9 }, () => TestClient.connect(port))))];
    cleanup.push(() => clients.forEach((client) => client.socket.terminate()));

    await waitFor("every client to get a greeting or be closed", () => clients.every((client) => client.firstLine !== "" || client.closed), 10_000);
    unanswered.push(...clients.filter((client) => client.firstLine !== "a").map((client, index) => `start ${round}, client ${index}: ${JSON.stringify(client.received)}`));
  }

  expect(unanswered).toEqual([]);
}, 120_000);

/**
 * End-to-end tests of backends that join a running set while probes are on: `dist/tinylb`
 * hands them no clients until their first probe passes, in every relay thread, while the
 * backends of the set at start serve before any probe.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { join } from "node:path";
import type { BackendStatus, BalancerStatus } from "../src/balancer-status.ts";
import { httpGet } from "./support/http-get.ts";
import { HttpBackend } from "./support/http-backend.ts";
import { rawBody, rawHttpExchange, rawStatus } from "./support/raw-http.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const directory = tempDirectory("tinylb-pending-");

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/**
 * A backend that accepts and never responds, like a hung API server: its probes time out. It
 * counts the client requests (`GET /`) apart from the probes (`GET /readyz`).
 */
class HungBackend {
  clientRequests = 0;
  probes = 0;
  readonly listener: TCPSocketListener<undefined>;

  constructor() {
    const sockets = new Set<Socket<undefined>>();
    this.listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          sockets.add(socket);
        },
        data: (_socket, chunk) => {
          if (chunk.toString("latin1").startsWith("GET /readyz")) {
            this.probes++;
          } else {
            this.clientRequests++;
          }
        },
        close: (socket) => {
          sockets.delete(socket);
        },
      },
    });
    cleanup.push(() => this.listener.stop(true));
  }

  get target(): string {
    return `127.0.0.1:${this.listener.port}`;
  }
}

function httpBackends(...ids: string[]): HttpBackend[] {
  const backends = ids.map((id) => new HttpBackend(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

/** Starts tinylb with an http probe of /readyz every `intervalMs`, and returns it with its port and admin flags. */
async function start(name: string, backends: HttpBackend[], extra: string[] = [], intervalMs = 2000, timeoutMs = 1500): Promise<{ tinylb: TinylbProcess; port: number; admin: string[] }> {
  const admin = ["--admin", `unix:${join(directory, `${name}.sock`)}`];
  const flags = backends.flatMap((backend) => ["--backend", `${backend.id}=${backend.target}`]);
  const probe = ["--probe", "http", "--probe-path", "/readyz", "--probe-interval", `${intervalMs}ms`, "--probe-timeout", `${timeoutMs}ms`];
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--shutdown-grace", "0", ...flags, ...probe, ...admin, ...extra]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr), admin };
}

/** Sends `count` requests through tinylb, one after another, and returns each response body. */
async function requests(port: number, count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    bodies.push(await within("a response through tinylb", httpGet(port), 5000));
  }

  return bodies;
}

async function healthOf(admin: string[], id: string): Promise<string | undefined> {
  const result = await runTinylb(["status", "--json", ...admin]);
  expect(result.exitCode).toBe(0);

  return (JSON.parse(result.stdout) as BalancerStatus).backends.find((backend) => backend.id === id)?.health;
}

async function statusOf(admin: string[], id: string): Promise<BackendStatus | undefined> {
  const result = await runTinylb(["status", "--json", ...admin]);
  expect(result.exitCode).toBe(0);

  return (JSON.parse(result.stdout) as BalancerStatus).backends.find((backend) => backend.id === id);
}

/** Reads `/metrics` from the admin socket of `admin` and returns the value of `series`, or undefined when the page lacks it. */
async function metricValue(admin: string[], series: string): Promise<number | undefined> {
  const response = await rawHttpExchange({ kind: "unix", path: admin[1]!.slice("unix:".length) }, "GET /metrics HTTP/1.0\r\n\r\n");
  expect(rawStatus(response)).toBe(200);
  const line = rawBody(response)
    .split("\n")
    .find((candidate) => candidate.startsWith(`${series} `));

  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Returns the time of the first log line that matches `pattern`, in milliseconds since the epoch. */
function loggedAt(stderr: string, pattern: RegExp): number {
  const line = stderr.split("\n").find((candidate) => pattern.test(candidate));
  if (line === undefined) {
    throw new Error(`no log line matches ${String(pattern)}:\n${stderr}`);
  }

  return Date.parse(line.split(" ")[0]!);
}

async function add(admin: string[], id: string, target: string): Promise<void> {
  const result = await runTinylb(["add", id, target, ...admin]);
  expect(result.stderr).toBe("");
  expect(result.exitCode).toBe(0);
}

test("hung backend that joins gets no clients", async () => {
  const [a, b] = httpBackends("a", "b") as [HttpBackend, HttpBackend];
  const quiet = new HungBackend();
  const { tinylb, port, admin } = await start("hung", [a, b]);

  // While its first probe waits for the 1.5 s timeout, quiet is pending and skipped.
  await add(admin, "quiet", quiet.target);
  expect(await healthOf(admin, "quiet")).toBe("pending");
  const text = await runTinylb(["status", ...admin]);
  expect(text.stdout).toContain('Pending: "quiet": joined a running set; no clients until its first probe passes, unless the balancer is degraded');
  expect(await requests(port, 6)).toEqual(["a", "b", "a", "b", "a", "b"]);
  await tinylb.waitForLog(/backend is pending: it gets no clients until its first probe passes, unless the balancer is degraded .*backend=quiet/);

  // The first probe fails, so quiet stays out of the rotation.
  await tinylb.waitForLog(/WARN\s+backend is unhealthy .*backend=quiet/);
  expect(await healthOf(admin, "quiet")).toBe("unhealthy");
  expect((await requests(port, 6)).filter((body) => body !== "a" && body !== "b")).toEqual([]);
  expect(quiet.probes).toBeGreaterThanOrEqual(1);
  expect(quiet.clientRequests).toBe(0);
});

test("healthy backend that joins gets clients within a probe", async () => {
  const [a, b, c] = httpBackends("a", "b", "c") as [HttpBackend, HttpBackend, HttpBackend];
  const { tinylb, port, admin } = await start("joins", [a, b], [], 5000, 1000);

  // The probe interval is 5 s, but the first probe of c runs at once.
  const added = Date.now();
  await add(admin, "c", c.target);
  await tinylb.waitForLog(/backend is healthy .*backend=c/, 2000);
  expect(Date.now() - added).toBeLessThan(2000);
  expect((await requests(port, 6)).sort()).toEqual(["a", "a", "b", "b", "c", "c"]);
});

test("--workers 2 skips a pending backend in every thread", async () => {
  const [a, b, c] = httpBackends("a", "b", "c") as [HttpBackend, HttpBackend, HttpBackend];
  const quiet = new HungBackend();
  const { tinylb, port, admin } = await start("workers", [a, b], ["--workers", "2", "--log-level", "debug"]);

  // SO_REUSEPORT spreads 24 clients over both threads; none reaches quiet while it is pending or failed.
  await add(admin, "quiet", quiet.target);
  const whilePending = await requests(port, 24);
  expect(whilePending.filter((body) => body !== "a" && body !== "b")).toEqual([]);
  await tinylb.waitForLog(/WARN\s+backend is unhealthy .*backend=quiet/);
  const afterFailure = await requests(port, 24);
  expect(afterFailure.filter((body) => body !== "a" && body !== "b")).toEqual([]);
  expect(quiet.clientRequests).toBe(0);

  // A healthy backend that joins reaches clients of both threads once its probe passes.
  await add(admin, "c", c.target);
  await tinylb.waitForLog(/backend is healthy .*backend=c/);
  await waitFor("c served by both threads", async () => {
    await requests(port, 12);
    const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("backend=c"));

    return opened.some((line) => line.includes("worker=1")) && opened.some((line) => !line.includes("worker="));
  });
});

test("start with dead probe endpoints still serves", async () => {
  const [a, b] = httpBackends("a", "b") as [HttpBackend, HttpBackend];
  a.readyStatus = 503;
  b.readyStatus = 503;
  const { port, admin } = await start("dead", [a, b], [], 200, 200);

  // The backends of the first set take clients before any probe, and after their probes fail, in degraded mode.
  expect(await healthOf(admin, "a")).not.toBe("pending");
  expect((await requests(port, 4)).sort()).toEqual(["a", "a", "b", "b"]);
  await waitFor("degraded", async () => (JSON.parse((await runTinylb(["status", "--json", ...admin])).stdout) as BalancerStatus).degraded);
  expect((await requests(port, 4)).sort()).toEqual(["a", "a", "b", "b"]);
});

test("pending backend in metrics and slow start", async () => {
  const [a, b, c] = httpBackends("a", "b", "c") as [HttpBackend, HttpBackend, HttpBackend];
  // The first probe of c passes only after 1.2 s, so c stays pending that long.
  c.readyDelayMs = 1200;
  const { tinylb, admin } = await start("pending-metrics", [a, b], ["--slow-start", "30s"], 2000, 1500);
  expect(await metricValue(admin, 'tinylb_backend_pending{backend="a"}')).toBe(0);

  // While c waits for its first probe: pending 1, healthy 0, and no slow start window yet.
  await add(admin, "c", c.target);
  expect(await metricValue(admin, 'tinylb_backend_pending{backend="c"}')).toBe(1);
  expect(await metricValue(admin, 'tinylb_backend_healthy{backend="c"}')).toBe(0);
  expect(await metricValue(admin, 'tinylb_backend_slow_start_weight{backend="c"}')).toBe(1);
  expect((await statusOf(admin, "c"))?.slowStartEndsInMs).toBeUndefined();
  expect(tinylb.stderr).not.toMatch(/slow start began .*backend=c/);

  // Once the first probe passes: pending 0, healthy 1, and the 30 s window counts from the pass.
  await tinylb.waitForLog(/backend is healthy .*backend=c/, 5000);
  c.readyDelayMs = 0;
  await tinylb.waitForLog(/slow start began .*backend=c/);
  expect(await metricValue(admin, 'tinylb_backend_pending{backend="c"}')).toBe(0);
  expect(await metricValue(admin, 'tinylb_backend_healthy{backend="c"}')).toBe(1);
  const joinedAt = loggedAt(tinylb.stderr, /backend is pending: .*backend=c/);
  const passedAt = loggedAt(tinylb.stderr, /backend is healthy .*backend=c/);
  expect(passedAt - joinedAt).toBeGreaterThanOrEqual(1000);
  const before = Date.now();
  const endsInMs = (await statusOf(admin, "c"))?.slowStartEndsInMs;
  const after = Date.now();
  expect(endsInMs).toBeDefined();
  // The window ends 30 s after the pass, give or take the time the status took and the log's clock.
  expect(before + endsInMs! - (passedAt + 30_000)).toBeLessThan(500);
  expect(after + endsInMs! - (passedAt + 30_000)).toBeGreaterThan(-500);
  expect(tinylb.stderr.split("\n").filter((line) => /slow start began .*backend=c/.test(line))).toHaveLength(1);
  expect(tinylb.stderr).toMatch(/slow start began .*backend=c .*cause="joined the set; first probe passed"/);
});

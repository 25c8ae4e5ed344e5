import { afterEach, expect, test } from "bun:test";
import type { Backend } from "../src/backend.ts";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { DisabledBackends } from "../src/disabled-backends.ts";
import { HealthChecker } from "../src/health-checker.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { LogLines } from "./support/log-lines.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

// Only dial results are fed in here, so these targets are never dialled.
function setOf(...ids: string[]): BackendSet {
  return new BackendSet(ids.map((id, index) => createBackend(id, `127.0.0.1:${1000 + index}`)));
}

const checkers: HealthChecker[] = [];
afterEach(() => checkers.splice(0).forEach((checker) => checker.stop()));

function start(set: BackendSet): { checker: HealthChecker; clock: FakeClock; logs: LogLines } {
  const clock = new FakeClock();
  const logs = new LogLines();
  const checker = new HealthChecker({ clock, logger: logs.logger });
  checker.update(set);
  checkers.push(checker);

  return { checker, clock, logs };
}

test("HealthChecker backs off 1s doubling to 30s", () => {
  const set = setOf("a", "b");
  const { checker, clock, logs } = start(set);
  const a = set.get("a")!;

  const expected = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
  for (const backoffMs of expected) {
    checker.dialFailed(a, "dial failed: refused");
    expect(checker.isHealthy(a)).toBe(false);
    expect(checker.state("a")!.backoffUntil).toBe(clock.now() + backoffMs);

    clock.advance(backoffMs - 1);
    expect(checker.isHealthy(a)).toBe(false);
    clock.advance(1);
    // The rotation retries a, but only a successful dial makes it healthy.
    expect(checker.isHealthy(a)).toBe(true);
    expect(checker.state("a")!.condition).toBe("retrying");
  }

  expect(checker.state("a")!.dialFailureStreak).toBe(expected.length);
  expect(logs.withMessage("backend is unhealthy").length).toBe(1);
  expect(logs.withMessage("backend is healthy").length).toBe(0);
  expect(logs.withMessage("backend is unhealthy")[0]!.cause).toBe("dial failed: refused; skipped for a back-off of 1s");
  expect(logs.withMessage("backend is unhealthy")[0]!.level).toBe("warn");
  expect(checker.isHealthy(set.get("b")!)).toBe(true);
});

test("HealthChecker budgets mass flip lines", () => {
  const ids = Array.from({ length: 120 }, (_, index) => `b${index}`);
  const set = setOf(...ids);
  const { checker, clock, logs } = start(set);

  for (const id of ids) {
    checker.dialFailed(set.get(id)!, "dial failed: refused");
  }
  const flips = logs.withMessage("backend is unhealthy");
  expect(flips.length).toBe(120);
  expect(flips.filter((record) => record.level === "warn").length).toBe(50);
  expect(flips.filter((record) => record.level === "debug").length).toBe(70);
  expect(logs.withMessage("more backends changed health than the log shows; the rest are debug lines until the interval ends, and tinylb status lists every backend's health")).toHaveLength(1);
  expect(checker.states().filter((state) => state.condition === "unhealthy").length).toBe(120);

  // A new interval gets its own lines.
  clock.advance(10_000);
  checker.dialSucceeded(set.get("b0")!);
  expect(logs.withMessage("backend is healthy")[0]).toMatchObject({ level: "info", backend: "b0" });
});

test("HealthChecker backs off ids sharing a target", () => {
  const set = new BackendSet([createBackend("api-1", "127.0.0.1:1000"), createBackend("seed", "127.0.0.1:1000"), createBackend("api-2", "127.0.0.1:1001")]);
  const { checker, logs } = start(set);
  const [api1, seed, api2] = ["api-1", "seed", "api-2"].map((id) => set.get(id)!) as [Backend, Backend, Backend];

  checker.dialFailed(api1, "dial failed: refused");

  expect(checker.isHealthy(seed)).toBe(false);
  expect(checker.isHealthy(api2)).toBe(true);
  expect(checker.state("seed")).toMatchObject({ condition: "unhealthy", dialFailureStreak: 1, cause: "dial failed: refused; skipped for a back-off of 1s" });
  expect(logs.withMessage("backend is unhealthy").map((line) => line.backend)).toEqual(["api-1", "seed"]);

  checker.dialSucceeded(seed);

  expect(checker.state("api-1")).toMatchObject({ condition: "healthy", dialFailureStreak: 0, cause: 'a dial of "seed", which has the same target, succeeded' });
  expect(checker.state("seed")).toMatchObject({ condition: "healthy", cause: "dial succeeded" });
});

test("HealthChecker reports retrying until a dial succeeds", () => {
  const set = setOf("a", "b");
  const { checker, clock, logs } = start(set);
  const a = set.get("a")!;

  checker.dialFailed(a, "dial failed: refused");
  expect(checker.state("a")).toMatchObject({ condition: "unhealthy", healthy: false, cause: "dial failed: refused; skipped for a back-off of 1s" });

  clock.advance(1000);
  expect(checker.state("a")).toMatchObject({ condition: "retrying", healthy: false, cause: "dial back-off of 1s ended; the next client retries it" });
  expect(logs.withMessage("backend is retrying")[0]!.level).toBe("debug");

  checker.dialFailed(a, "dial failed: refused");
  expect(checker.state("a")).toMatchObject({ condition: "unhealthy", cause: "dial failed: refused; skipped for a back-off of 2s" });
  clock.advance(2000);
  checker.dialSucceeded(a);

  expect(checker.state("a")).toMatchObject({ condition: "healthy", healthy: true, cause: "dial succeeded" });
  expect(logs.withMessage("backend is unhealthy").length).toBe(1);
  expect(logs.withMessage("backend is healthy").length).toBe(1);
  expect(logs.withMessage("backend is healthy")[0]!.cause).toBe("dial succeeded");
  expect(logs.withMessage("backend is healthy")[0]!.level).toBe("info");
});

test("HealthChecker lets one trial dial through after a back-off", () => {
  const set = setOf("a", "b");
  const { checker, clock } = start(set);
  const a = set.get("a")!;
  expect(checker.dialStarted(a, 3000)).toBe(false);
  checker.dialFailed(a, "dial failed: timed out");
  clock.advance(1000);
  expect(checker.isHealthy(a)).toBe(true);

  // The first client after the back-off dials a; the others pass it over until that dial settles.
  expect(checker.dialStarted(a, 3000)).toBe(true);
  expect(checker.isHealthy(a)).toBe(false);
  expect(checker.isCoolingDown(a)).toBe(true);
  expect(checker.dialStarted(a, 3000)).toBe(false);
  expect(checker.state("a")!.condition).toBe("retrying");
  checker.dialFailed(a, "dial failed: timed out", true);
  expect(checker.state("a")!.backoffUntil).toBe(clock.now() + 2000);

  // A trial that tinylb gave up itself lets the next client try.
  clock.advance(2000);
  expect(checker.dialStarted(a, 3000)).toBe(true);
  expect(checker.isHealthy(a)).toBe(false);
  checker.dialGivenUp(a);
  expect(checker.isHealthy(a)).toBe(true);

  // A trial whose result never comes ends a second after the connect timeout.
  expect(checker.dialStarted(a, 3000)).toBe(true);
  clock.advance(3999);
  expect(checker.isHealthy(a)).toBe(false);
  clock.advance(1);
  expect(checker.isHealthy(a)).toBe(true);

  expect(checker.dialStarted(a, 3000)).toBe(true);
  checker.dialSucceeded(a);
  expect(checker.isHealthy(a)).toBe(true);
  expect(checker.isCoolingDown(a)).toBe(false);
  // A healthy backend's dials start no trial.
  expect(checker.dialStarted(a, 3000)).toBe(false);
  expect(checker.isHealthy(a)).toBe(true);
  expect(checker.isHealthy(set.get("b")!)).toBe(true);
});

test("HealthChecker runs one trial per target", () => {
  const set = new BackendSet([createBackend("a", "127.0.0.1:1000"), createBackend("a2", "127.0.0.1:1000")]);
  const { checker, clock } = start(set);
  const [a, a2] = [set.get("a")!, set.get("a2")!];
  checker.dialFailed(a, "dial failed: timed out");
  clock.advance(1000);

  expect(checker.dialStarted(a, 3000)).toBe(true);
  // The other id of the target waits for the trial too.
  expect(checker.isHealthy(a2)).toBe(false);
  expect(checker.dialStarted(a2, 3000)).toBe(false);
  checker.dialFailed(a, "dial failed: timed out", true);
  clock.advance(2000);
  expect(checker.isHealthy(a2)).toBe(true);
});

test("HealthChecker keeps a trial when an older dial fails", () => {
  const set = setOf("a");
  const { checker, clock } = start(set);
  const a = set.get("a")!;
  checker.dialFailed(a, "dial failed: timed out");
  clock.advance(1000);
  expect(checker.dialStarted(a, 3000)).toBe(true);

  // A dial started before the first back-off times out while the trial is in flight.
  clock.advance(100);
  checker.dialFailed(a, "dial failed: timed out");
  clock.advance(2000);

  // Its back-off is over, but the trial still runs, so no second client dials a.
  expect(checker.isHealthy(a)).toBe(false);
  expect(checker.dialStarted(a, 3000)).toBe(false);
  clock.advance(900);
  checker.dialFailed(a, "dial failed: timed out", true);
  expect(checker.isCoolingDown(a)).toBe(true);
  expect(checker.state("a")!.backoffUntil).toBe(clock.now() + 4000);
});

test("binary logs an unhealthy backend at --log-level warn", async () => {
  // Nothing listens on port 1 of loopback, so the tcp probe fails.
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:1", "--probe", "tcp", "--probe-interval", "100ms", "--log-level", "warn"]);

  await tinylb.waitForLog(/WARN +backend is unhealthy .*backend=a/);
  expect(tinylb.stderr).not.toContain("INFO");
});

test("HealthChecker with a probe retries after a back-off", () => {
  // The first probe connects to a Unix socket that does not exist; that fails only after
  // these synchronous checks, and one failure is below the default fall of 3 anyway.
  const set = new BackendSet([createBackend("a", `unix:/tmp/tinylb-test-missing-${process.pid}.sock`)]);
  const clock = new FakeClock();
  const logs = new LogLines();
  const checker = new HealthChecker({ clock, logger: logs.logger, probe: { kind: "tcp" }, probeOverrides: new Map() });
  checkers.push(checker);
  checker.update(set);
  const a = set.get("a")!;

  checker.dialFailed(a, "dial failed: refused");
  clock.advance(999);
  expect(checker.state("a")!.condition).toBe("unhealthy");
  clock.advance(1);

  // A dead backend whose probe has not reached its fall count must not flip to healthy.
  expect(checker.state("a")).toMatchObject({ condition: "retrying", cause: "dial back-off of 1s ended; the next passed probe or client dial makes it healthy" });
  expect(checker.isHealthy(a)).toBe(true);
  expect(logs.withMessage("backend is healthy").length).toBe(0);
  checker.dialSucceeded(a);
  expect(checker.state("a")!.condition).toBe("healthy");
  expect(logs.withMessage("backend is healthy").length).toBe(1);
});

test("HealthChecker ignores failures during a back-off", () => {
  const set = setOf("a", "b");
  const { checker, clock, logs } = start(set);
  const a = set.get("a")!;

  for (let i = 0; i < 10; i++) {
    checker.dialFailed(a, "dial failed: timed out");
  }

  expect(checker.state("a")!.dialFailureStreak).toBe(1);
  expect(checker.state("a")!.backoffUntil).toBe(1000);
  expect(logs.withMessage("backend is unhealthy").length).toBe(1);
  clock.advance(1000);
  expect(checker.isHealthy(a)).toBe(true);
});

test("HealthChecker resets the streak after a dial succeeds", () => {
  const set = setOf("a", "b");
  const { checker, clock } = start(set);
  const a = set.get("a")!;

  checker.dialFailed(a, "refused");
  clock.advance(1000);
  checker.dialFailed(a, "refused");
  expect(checker.state("a")!.backoffUntil).toBe(1000 + 2000);
  clock.advance(2000);
  checker.dialSucceeded(a);
  expect(checker.state("a")!.dialFailureStreak).toBe(0);

  checker.dialFailed(a, "refused");
  expect(checker.state("a")!.backoffUntil).toBe(clock.now() + 1000);
});

test("HealthChecker logs degraded once per flip", () => {
  const set = setOf("a", "b");
  const { checker, clock, logs } = start(set);
  const [a, b] = set.backends as [Backend, Backend];
  const degradedLines = (): number => logs.withMessage("every enabled backend is unhealthy or pending; degraded: trying all of them in rotation order").length;

  checker.dialFailed(a, "refused");
  expect(checker.degraded).toBe(false);
  checker.dialFailed(b, "refused");
  checker.dialFailed(b, "refused");
  expect(checker.degraded).toBe(true);
  expect(degradedLines()).toBe(1);

  clock.advance(1000);
  // Back-offs that end without a probe leave both retrying, which is not healthy.
  expect(checker.degraded).toBe(true);
  checker.dialSucceeded(a);
  expect(checker.degraded).toBe(false);
  expect(logs.withMessage("no longer degraded: an enabled backend is healthy").length).toBe(1);

  checker.dialFailed(a, "refused");
  checker.dialFailed(b, "refused");
  expect(checker.degraded).toBe(true);
  expect(degradedLines()).toBe(2);
  expect(logs.withMessage("every enabled backend is unhealthy or pending; degraded: trying all of them in rotation order")[0]!.level).toBe("warn");
});

test("HealthChecker is not degraded with an empty set", () => {
  const { checker } = start(BackendSet.EMPTY);

  expect(checker.degraded).toBe(false);
  expect(checker.states()).toEqual([]);
});

test("HealthChecker treats a retargeted id as new", () => {
  const set = setOf("a", "b");
  const { checker } = start(set);
  const oldA = set.get("a")!;
  checker.dialFailed(oldA, "refused");

  const newA = createBackend("a", "127.0.0.1:2000");
  checker.update(new BackendSet([newA, set.get("b")!]));

  expect(checker.isHealthy(newA)).toBe(true);
  expect(checker.state("a")).toMatchObject({ target: "127.0.0.1:2000", dialFailureStreak: 0, healthy: true });
  checker.dialFailed(oldA, "late failure of the old target");
  expect(checker.isHealthy(newA)).toBe(true);
});

test("HealthChecker forgets removed ids and their timers", () => {
  const set = setOf("a", "b");
  const { checker, clock } = start(set);
  checker.dialFailed(set.get("a")!, "refused");
  expect(clock.pending).toBe(1);

  checker.update(setOf("b"));

  expect(checker.state("a")).toBeUndefined();
  expect(clock.pending).toBe(0);
  expect(checker.states().map((state) => state.id)).toEqual(["b"]);
});

test("HealthChecker tells listeners of each flip", () => {
  const set = setOf("a", "b");
  const { checker, clock } = start(set);
  const flips: string[] = [];
  checker.onFlip((backend, healthy) => flips.push(`${backend.id}:${healthy ? "healthy" : "unhealthy"}`));

  checker.dialFailed(set.get("a")!, "refused");
  checker.dialFailed(set.get("a")!, "refused");
  clock.advance(1000);
  checker.dialFailed(set.get("a")!, "refused");
  clock.advance(2000);
  checker.dialSucceeded(set.get("a")!);

  expect(flips).toEqual(["a:unhealthy", "a:healthy"]);
});

test("HealthChecker stop cancels every timer", () => {
  const set = setOf("a", "b");
  const { checker, clock } = start(set);
  checker.dialFailed(set.get("a")!, "refused");
  checker.dialFailed(set.get("b")!, "refused");
  expect(clock.pending).toBe(2);

  checker.stop();

  expect(clock.pending).toBe(0);
});

/** An HTTP backend whose /readyz status a test sets, counting probes and how many overlap. */
class ReadyzServer {
  status = 200;
  delayMs = 0;
  probes = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Requests whose client closed the connection before the response. */
  aborted = 0;
  readonly server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      request.signal.addEventListener("abort", () => this.aborted++);
      this.probes++;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      try {
        if (this.delayMs > 0) {
          await Bun.sleep(this.delayMs);
        }

        return new Response(null, { status: this.status });
      } finally {
        this.inFlight--;
      }
    },
  });

  get backend(): Backend {
    return createBackend("api-1", `127.0.0.1:${this.server.port}`);
  }
}

function probed(readyz: ReadyzServer, probe: ConstructorParameters<typeof HealthChecker>[0]): { checker: HealthChecker; logs: LogLines } {
  const logs = new LogLines();
  const checker = new HealthChecker({ ...probe, logger: logs.logger });
  checkers.push(checker);
  checker.update(new BackendSet([readyz.backend]));

  return { checker, logs };
}

test("HealthChecker probes fall after 3 failures and rise after 2 passes", async () => {
  const readyz = new ReadyzServer();
  try {
    const { checker, logs } = probed(readyz, { probe: { kind: "http", path: "/readyz", intervalMs: 20, timeoutMs: 1000, rise: 2, fall: 3 } });
    await waitFor("two probes", () => readyz.probes >= 2);
    expect(checker.state("api-1")!.healthy).toBe(true);

    readyz.status = 500;
    await waitFor("unhealthy", () => !checker.state("api-1")!.healthy);
    expect(checker.state("api-1")!.probe).toMatchObject({ up: false, failures: 3, lastError: "GET /readyz returned status 500, expected 200" });
    const failedAt = readyz.probes;
    await waitFor("three more failed probes", () => readyz.probes >= failedAt + 3);
    expect(logs.withMessage("backend is unhealthy").length).toBe(1);
    expect(logs.withMessage("backend is unhealthy")[0]!.cause).toBe("http GET /readyz failed 3 times in a row: GET /readyz returned status 500, expected 200");

    readyz.status = 200;
    await waitFor("healthy again", () => checker.state("api-1")!.healthy);
    expect(checker.state("api-1")!.probe).toMatchObject({ up: true, passes: 2 });
    expect(logs.withMessage("backend is healthy").length).toBe(1);
    expect(logs.withMessage("backend is healthy")[0]!.cause).toBe("http GET /readyz passed 2 times in a row");
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker cause follows the latest failed probe", async () => {
  const readyz = new ReadyzServer();
  try {
    const { checker, logs } = probed(readyz, { probe: { kind: "http", path: "/readyz", intervalMs: 20, timeoutMs: 1000, rise: 2, fall: 3 } });
    readyz.status = 500;
    await waitFor("unhealthy", () => !checker.state("api-1")!.healthy);
    expect(checker.state("api-1")!.cause).toBe("http GET /readyz failed 3 times in a row: GET /readyz returned status 500, expected 200");

    readyz.status = 401;
    await waitFor("the cause to name the new status", () => checker.state("api-1")!.cause.includes("returned status 401"));
    expect(checker.state("api-1")!.cause).toMatch(/^http GET \/readyz failed \d+ times in a row: GET \/readyz returned status 401, expected 200$/);
    expect(checker.state("api-1")!.condition).toBe("unhealthy");
    // The log stays edge-triggered: one line for the fall, none for the changed cause.
    expect(logs.withMessage("backend is unhealthy").length).toBe(1);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker logs a disabled backend's fall as info", async () => {
  const readyz = new ReadyzServer();
  try {
    const { checker, logs } = probed(readyz, { probe: { kind: "http", path: "/readyz", intervalMs: 20, timeoutMs: 1000, rise: 1, fall: 1 } });
    checker.setDisabled(new Set(["api-1"]));
    await waitFor("a probe", () => readyz.probes >= 1);

    readyz.status = 500;
    await waitFor("unhealthy", () => !checker.state("api-1")!.healthy);

    const lines = logs.withMessage("backend is unhealthy");
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe("info");
    expect(lines[0]!.disabled).toBe(true);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker never overlaps probes of one backend", async () => {
  const readyz = new ReadyzServer();
  readyz.delayMs = 150;
  try {
    probed(readyz, { probe: { kind: "http", intervalMs: 10, timeoutMs: 5000 } });
    await waitFor("four probes", () => readyz.probes >= 4);

    expect(readyz.maxInFlight).toBe(1);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker fails a probe slower than its timeout", async () => {
  const readyz = new ReadyzServer();
  readyz.delayMs = 2000;
  try {
    const { checker, logs } = probed(readyz, { probe: { kind: "http", intervalMs: 50, timeoutMs: 100, fall: 2 } });
    await waitFor("unhealthy", () => !checker.state("api-1")!.healthy);

    expect(checker.state("api-1")!.probe!.lastError).toBe("timed out after 100 ms");
    expect(logs.withMessage("backend is unhealthy")[0]!.cause).toBe("http GET / failed 2 times in a row: timed out after 100 ms");
    await waitFor("the timed-out probes' connections to close", () => readyz.aborted >= 2);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker probe pass ends a dial back-off", async () => {
  const readyz = new ReadyzServer();
  try {
    const { checker } = probed(readyz, { probe: { kind: "tcp", intervalMs: 100, timeoutMs: 1000 }, backoffMs: 60_000 });
    const backend = readyz.backend;
    checker.dialFailed(backend, "dial failed: refused");
    expect(checker.isHealthy(backend)).toBe(false);

    await waitFor("probe to end the back-off", () => checker.isHealthy(backend));
    expect(checker.state("api-1")!.dialFailureStreak).toBe(0);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker probe falling in a back-off becomes the cause", async () => {
  const readyz = new ReadyzServer();
  readyz.status = 500;
  try {
    const { checker, logs } = probed(readyz, { probe: { kind: "http", intervalMs: 20, timeoutMs: 1000, fall: 2 }, backoffMs: 60_000 });
    const backend = readyz.backend;
    checker.dialFailed(backend, "dial failed: refused");
    expect(checker.state("api-1")!.cause).toBe("dial failed: refused; skipped for a back-off of 30s");

    await waitFor("the probe to fall", () => checker.state("api-1")!.probe!.up === false);

    expect(checker.state("api-1")!.cause).toBe("http GET / failed 2 times in a row: GET / returned status 500, expected 200");
    expect(logs.withMessage("backend is unhealthy").length).toBe(1);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker restarts probing when the probe changes", async () => {
  const readyz = new ReadyzServer();
  readyz.status = 500;
  try {
    const { checker } = probed(readyz, { probe: { kind: "http", intervalMs: 20, timeoutMs: 1000, fall: 1 } });
    await waitFor("unhealthy", () => !checker.state("api-1")!.healthy);

    checker.configure({});
    expect(checker.state("api-1")).toMatchObject({ healthy: true, probe: undefined });
    const probes = readyz.probes;
    await Bun.sleep(100);
    expect(readyz.probes).toBe(probes);
  } finally {
    readyz.server.stop(true);
  }
});

test("HealthChecker leaves disabled backends out of degraded", () => {
  const set = setOf("a", "b", "c");
  const { checker, logs } = start(set);
  const [a, b] = set.backends as [Backend, Backend, Backend];
  let announced = 0;
  checker.onConditionChange(() => announced++);
  const disabled = new DisabledBackends();
  disabled.disable("c");
  checker.setDisabled(disabled);

  // c is healthy but disabled, so a and b falling makes the balancer degraded.
  checker.dialFailed(a, "refused");
  checker.dialFailed(b, "refused");
  expect(checker.degraded).toBe(true);
  expect(logs.withMessage("every enabled backend is unhealthy or pending; degraded: trying all of them in rotation order")[0]).toMatchObject({ level: "warn", count: 2 });

  // Enabling c ends it, and the workers' snapshot is announced.
  const before = announced;
  disabled.enable("c");
  checker.setDisabled(disabled);
  expect(checker.degraded).toBe(false);
  expect(announced).toBe(before + 1);
  expect(logs.withMessage("no longer degraded: an enabled backend is healthy")[0]).toMatchObject({ healthy: 1 });

  // Disabling every backend leaves no enabled one, so the balancer is not degraded either.
  for (const id of ["a", "b", "c"]) {
    disabled.disable(id);
  }
  checker.setDisabled(disabled);
  expect(checker.degraded).toBe(false);

  // A disabled backend's health is still tracked.
  expect(checker.state("a")).toMatchObject({ condition: "unhealthy", dialFailureStreak: 1 });
});

test("HealthChecker ends degraded when all are disabled", () => {
  const set = setOf("a", "b");
  const { checker, logs } = start(set);
  const disabled = new DisabledBackends();
  checker.setDisabled(disabled);
  for (const backend of set.backends) {
    checker.dialFailed(backend, "refused");
  }
  expect(checker.degraded).toBe(true);

  disabled.disable("a");
  disabled.disable("b");
  checker.setDisabled(disabled);

  expect(checker.degraded).toBe(false);
  expect(logs.withMessage("no longer degraded: no backend is enabled")[0]).toMatchObject({ level: "info", disabled: 2 });
});

test("HealthChecker logs a retargeted unhealthy id as healthy", () => {
  const set = setOf("a", "b");
  const { checker, logs } = start(set);
  checker.dialFailed(set.get("a")!, "dial failed: refused");
  checker.dialFailed(set.get("b")!, "dial failed: refused");

  // a moves to another target; b stays where it failed.
  checker.update(new BackendSet([createBackend("a", "127.0.0.1:2000"), set.get("b")!]));

  const healthy = logs.withMessage("backend is healthy");
  expect(healthy.map((line) => [line.backend, line.target])).toEqual([["a", "127.0.0.1:2000"]]);
  expect(healthy[0]!.cause).toBe("its target changed from 127.0.0.1:1000, so its health starts over");
  expect(checker.state("a")).toMatchObject({ condition: "healthy", healthy: true });
  expect(checker.state("b")).toMatchObject({ condition: "unhealthy" });
});

/** Returns a probed checker on the system clock whose running set is `first`, plus its logs. */
function runningProbed(first: BackendSet, probe: NonNullable<ConstructorParameters<typeof HealthChecker>[0]>["probe"]): { checker: HealthChecker; logs: LogLines } {
  const logs = new LogLines();
  const checker = new HealthChecker({ probe, logger: logs.logger });
  checkers.push(checker);
  checker.update(first);

  return { checker, logs };
}

test("HealthChecker keeps a joining backend pending until a probe passes", async () => {
  const running = new ReadyzServer();
  const joining = new ReadyzServer();
  joining.delayMs = 300;
  try {
    const first = new BackendSet([createBackend("a", `127.0.0.1:${running.server.port}`)]);
    const { checker, logs } = runningProbed(first, { kind: "http", path: "/readyz", intervalMs: 60_000, timeoutMs: 5000, rise: 2 });
    // The backend of the first set is healthy before any probe.
    expect(checker.state("a")!.condition).toBe("healthy");

    const b = createBackend("b", `127.0.0.1:${joining.server.port}`);
    checker.update(new BackendSet([first.get("a")!, b]));
    expect(checker.state("b")).toMatchObject({ condition: "pending", healthy: false });
    expect(checker.isHealthy(b)).toBe(false);
    expect(checker.degraded).toBe(false);
    expect(logs.withMessage("backend is pending: it gets no clients until its first probe passes, unless the balancer is degraded").map((line) => line.backend)).toEqual(["b"]);

    // The first probe starts at once, and one pass is enough even with rise: 2.
    await waitFor("b's first probe", () => checker.state("b")!.condition !== "pending");
    expect(joining.probes).toBe(1);
    expect(checker.state("b")!.condition).toBe("healthy");
    expect(checker.isHealthy(b)).toBe(true);
    expect(logs.withMessage("backend is healthy").map((line) => line.backend)).toEqual(["b"]);
  } finally {
    running.server.stop(true);
    joining.server.stop(true);
  }
});

test("HealthChecker leaves a joining backend out after a failed probe", async () => {
  const running = new ReadyzServer();
  const joining = new ReadyzServer();
  joining.status = 503;
  try {
    const first = new BackendSet([createBackend("a", `127.0.0.1:${running.server.port}`)]);
    const { checker, logs } = runningProbed(first, { kind: "http", path: "/readyz", intervalMs: 50, timeoutMs: 5000, rise: 2, fall: 3 });
    const b = createBackend("b", `127.0.0.1:${joining.server.port}`);
    checker.update(new BackendSet([first.get("a")!, b]));

    // One failure is enough for a pending backend, and it is warned about once.
    await waitFor("b's first probe", () => checker.state("b")!.condition !== "pending");
    expect(checker.state("b")).toMatchObject({ condition: "unhealthy", timesUnhealthy: 1 });
    expect(logs.withMessage("backend is unhealthy").map((line) => line.backend)).toEqual(["b"]);
    expect(logs.withMessage("backend is unhealthy")[0]!.level).toBe("warn");

    // From there the usual rise applies: two passes in a row.
    joining.status = 200;
    await waitFor("b healthy", () => checker.state("b")!.condition === "healthy");
    expect(checker.state("b")!.probe).toMatchObject({ up: true, passes: 2 });
  } finally {
    running.server.stop(true);
    joining.server.stop(true);
  }
});

test("HealthChecker is degraded when every backend is pending or unhealthy", () => {
  const set = setOf("a");
  const clock = new FakeClock();
  const checker = new HealthChecker({ clock, probe: { kind: "tcp", intervalMs: 60_000 } });
  checkers.push(checker);
  checker.update(set);
  checker.dialFailed(set.get("a")!, "dial failed: refused");
  expect(checker.degraded).toBe(true);

  // b waits for its probe, which the fake clock has not run, so nothing is healthy.
  checker.update(new BackendSet([set.get("a")!, createBackend("b", "127.0.0.1:1001")]));
  expect(checker.state("b")!.condition).toBe("pending");
  expect(checker.degraded).toBe(true);
});

test("HealthChecker without probes never makes a backend pending", () => {
  const set = setOf("a");
  const { checker } = start(set);
  const b = createBackend("b", "127.0.0.1:1001");

  checker.update(new BackendSet([set.get("a")!, b]));
  expect(checker.state("b")).toMatchObject({ condition: "healthy", healthy: true });
  expect(checker.isHealthy(b)).toBe(true);
});

test("HealthChecker makes a retargeted probed id pending", () => {
  const set = setOf("a", "b");
  const clock = new FakeClock();
  const logs = new LogLines();
  const checker = new HealthChecker({ clock, logger: logs.logger, probe: { kind: "tcp", intervalMs: 60_000 } });
  checkers.push(checker);
  checker.update(set);
  checker.dialFailed(set.get("a")!, "dial failed: refused");

  checker.update(new BackendSet([createBackend("a", "127.0.0.1:2000"), set.get("b")!]));
  expect(checker.state("a")!.condition).toBe("pending");
  expect(checker.state("a")!.cause).toBe(`its target changed from ${set.get("a")!.target}; no clients until its first probe passes, unless the balancer is degraded`);
  // No "healthy" line for the new target, since it has not passed a probe yet.
  expect(logs.withMessage("backend is healthy")).toHaveLength(0);
});

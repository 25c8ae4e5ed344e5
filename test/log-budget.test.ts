import { afterEach, expect, test } from "bun:test";
import { DIAL_FAILURE_LINES } from "../src/backend-connector.ts";
import { LogBudget } from "../src/log-budget.ts";
import { RateLimitedLog } from "../src/rate-limited-log.ts";
import { LogLines } from "./support/log-lines.ts";
import { setOf, startLoggedServer } from "./support/test-server.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const SPENT = "more backends failed to dial than are logged; the rest of this interval's dial failures are logged at debug";

test("LogBudget bounds a group of logs", () => {
  const log = new LogLines();
  let now = 0;
  const budget = new LogBudget(log.logger, "warn", 3, 1000, "budget spent", () => now);
  const logs = ["a", "b", "c", "d", "e"].map(() => new RateLimitedLog(log.logger, "warn", 1000, () => now, budget));

  logs.forEach((entry, index) => entry.log("failed", { index }));

  expect(log.withMessage("failed").map((record) => record.index)).toEqual([0, 1, 2]);
  expect(log.withMessage("budget spent")).toHaveLength(1);
  // The next interval has a new budget, and the line counts its own lines left out.
  now = 1000;
  logs[3]!.log("failed", { index: 3 });
  expect(log.withMessage("failed").at(-1)).toMatchObject({ index: 3, suppressed: 1 });
});

test("many dead backends log bounded lines", async () => {
  // Listeners bound and stopped again leave loopback ports that refuse connections.
  const ports = Array.from({ length: DIAL_FAILURE_LINES + 20 }, () => {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = listener.port;
    listener.stop(true);

    return port;
  });
  const set = setOf(ports.map((port, index) => ({ id: `dead-${String(index).padStart(2, "0")}`, target: `127.0.0.1:${port}` })));
  const { server, port, logs } = await startLoggedServer(set, {}, cleanup);

  const client = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
  cleanup.push(() => client.end());

  await waitFor("the client to be refused", () => server.stats.unserved === 1);
  expect(logs.withMessage("dial failed").filter((record) => record.level === "warn")).toHaveLength(DIAL_FAILURE_LINES);
  expect(logs.withMessage(SPENT)).toHaveLength(1);
});

import { expect, test } from "bun:test";
import { Logger } from "../src/logger.ts";
import { FailureStreak } from "../src/providers/failure-streak.ts";
import { ProviderHealth } from "../src/providers/provider-health.ts";

test("failure streak records provider health", () => {
  const lines: string[] = [];
  const health = new ProviderHealth();
  const streak = new FailureStreak(new Logger({ level: "debug", sink: (line) => lines.push(line) }), health);

  streak.failed("etcd range or watch failed", { err: new Error("connection refused") });
  streak.failed("etcd range or watch failed", { err: new Error("timed out") });
  expect(health.failing).toBe(true);
  expect(health.failures).toBe(2);
  expect(health.lastError).toBe("timed out");
  expect(health.failingSinceMs).toBeNumber();

  streak.succeeded("etcd reachable again");
  expect(health.failing).toBe(false);
  expect(health.failures).toBe(2);
  expect(health.lastError).toBeUndefined();
  expect(health.failingSinceMs).toBeUndefined();
  expect(lines.length).toBe(3);
});

import { expect, test } from "bun:test";
import { Logger } from "../src/logger.ts";
import { FailureStreak, MAX_WARNED_CAUSES } from "../src/providers/failure-streak.ts";
import { ProviderHealth } from "../src/providers/provider-health.ts";

function recordingStreak(): { streak: FailureStreak; health: ProviderHealth; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const health = new ProviderHealth();
  const log = new Logger({ level: "debug", format: "json", sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });

  return { streak: new FailureStreak(log, health), health, lines };
}

test("failure streak records provider health", () => {
  const { streak, health, lines } = recordingStreak();

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

test("failure streak warns once per cause, with digits masked", () => {
  const { streak, lines } = recordingStreak();
  const connectFailure = (port: number) => new Error(`Kubernetes request to https://127.0.0.1:${port}/api failed: connection refused`);

  streak.failed("list failed", { err: connectFailure(6443) });
  streak.failed("list failed", { err: connectFailure(6444) });
  streak.failed("list failed", { err: new Error("Kubernetes request to https://127.0.0.1:6443/api failed: 401 Unauthorized") });
  streak.failed("list failed", { err: new Error("Kubernetes request to https://127.0.0.1:6443/api failed: 401 Unauthorized") });
  streak.failed("list failed", { err: connectFailure(6443) });

  expect(lines.map((line) => line.level)).toEqual(["warn", "debug", "warn", "debug", "debug"]);
  expect(lines[0]!.failures).toBeUndefined();
  expect(lines[2]!.failures).toBe(3);
  expect(lines[2]!.err).toContain("401 Unauthorized");

  streak.succeeded("reachable again");
  streak.failed("list failed", { err: connectFailure(6443) });
  expect(lines.at(-1)!.level).toBe("warn");
});

test("failure streak stops warning after a bounded count of causes", () => {
  const { streak, lines } = recordingStreak();
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo"];

  for (const word of words) {
    streak.failed("list failed", { err: new Error(`failed: ${word}`) });
  }

  expect(lines.filter((line) => line.level === "warn").length).toBe(MAX_WARNED_CAUSES);
  expect(lines.length).toBe(words.length);
});

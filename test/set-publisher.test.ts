import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { ProviderHealth } from "../src/providers/provider-health.ts";
import { SetPublisher } from "../src/providers/set-publisher.ts";
import { LogLines } from "./support/log-lines.ts";

const REASON = "no valid backend under the etcd prefix";
const ONE_BACKEND = new BackendSet([createBackend("api-1", "10.0.0.11:6443")]);

test("SetPublisher logs the end of a stale mark", () => {
  const log = new LogLines();
  const health = new ProviderHealth();
  const publisher = new SetPublisher(log.logger, REASON, undefined, health);
  const published: BackendSet[] = [];
  publisher.offer(ONE_BACKEND, (set) => published.push(set), {}, 1_000);

  publisher.offer(BackendSet.EMPTY, (set) => published.push(set), { keys: 0 }, 2_000);
  publisher.offer(BackendSet.EMPTY, (set) => published.push(set), { keys: 0 }, 3_000);
  expect(health.stale).toBe(true);
  expect(log.withMessage(`${REASON}; keeping the last backend set`).length).toBe(1);

  publisher.offer(ONE_BACKEND, (set) => published.push(set), { keys: 1 }, 9_500);

  expect(health.stale).toBe(false);
  expect(published.length).toBe(1);
  const cleared = log.withMessage("usable backends listed again; the backend set is no longer stale");
  expect(cleared.length).toBe(1);
  expect(cleared[0]!.level).toBe("info");
  expect(cleared[0]!.staleForMs).toBe(7_500);
  expect(cleared[0]!.staleReason).toBe(REASON);
  expect(cleared[0]!.count).toBe(1);
  expect(cleared[0]!.keys).toBe(1);

  // A later result with backends, while not stale, logs nothing more.
  publisher.offer(ONE_BACKEND, (set) => published.push(set), { keys: 1 }, 10_000);
  expect(log.withMessage("usable backends listed again; the backend set is no longer stale").length).toBe(1);
});

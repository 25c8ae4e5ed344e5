import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { DisabledBackends } from "../src/disabled-backends.ts";
import { LogLines } from "./support/log-lines.ts";

// Targets are never dialled here; the port only makes targets differ.
function setOf(...entries: string[]): BackendSet {
  return new BackendSet(
    entries.map((entry) => {
      const [id, port] = entry.split("@");

      return createBackend(id!, `127.0.0.1:${port ?? 1000 + id!.charCodeAt(0)}`);
    }),
  );
}

test("DisabledBackends reports each change once", () => {
  const disabled = new DisabledBackends();
  let changes = 0;
  disabled.onChange(() => changes++);

  expect(disabled.disable("a")).toBe(true);
  expect(disabled.disable("a")).toBe(false);
  expect(disabled.has("a")).toBe(true);
  expect(disabled.size).toBe(1);
  expect(changes).toBe(1);

  expect(disabled.enable("b")).toBe(false);
  expect(disabled.enable("a")).toBe(true);
  expect(disabled.has("a")).toBe(false);
  expect(changes).toBe(2);
});

test("DisabledBackends keeps a retargeted id's mark", () => {
  const logs = new LogLines();
  const disabled = new DisabledBackends(logs.logger);
  disabled.disable("a");

  // Same id, new target, as a provider that moves a backend publishes it.
  disabled.setReplaced(setOf("a@2000", "b"));
  // The same set published again.
  disabled.setReplaced(setOf("a@2000", "b"));

  expect(disabled.has("a")).toBe(true);
  expect(logs.records).toEqual([]);
});

test("DisabledBackends forgets an id that left the set", () => {
  const logs = new LogLines();
  const disabled = new DisabledBackends(logs.logger);
  let changes = 0;
  disabled.onChange(() => changes++);
  disabled.disable("a");
  disabled.disable("b");

  disabled.setReplaced(setOf("b", "c"));

  expect(disabled.ids()).toEqual(["b"]);
  expect(changes).toBe(3);
  const forgotten = logs.withMessage("disabled backend left the set; its disabled state is forgotten");
  expect(forgotten.map((record) => [record.level, record.backend])).toEqual([["info", "a"]]);

  // The id comes back enabled.
  disabled.setReplaced(setOf("a", "b", "c"));
  expect(disabled.has("a")).toBe(false);
});

test("DisabledBackends logs forgotten ids at debug in a relay worker", () => {
  const logs = new LogLines();
  const disabled = new DisabledBackends(logs.logger, false);
  disabled.disable("a");

  disabled.setReplaced(setOf("b"));

  expect(logs.withMessage("disabled backend left the set; its disabled state is forgotten").map((record) => record.level)).toEqual(["debug"]);
});

test("DisabledBackends warns when a new set is all disabled", () => {
  const logs = new LogLines();
  const disabled = new DisabledBackends(logs.logger);
  disabled.disable("a");
  disabled.disable("b");

  disabled.setReplaced(setOf("a", "b", "c"));
  expect(logs.withMessage("every backend of the set is disabled; clients are closed until one is enabled")).toEqual([]);

  disabled.setReplaced(setOf("a", "b"));
  const warnings = logs.withMessage("every backend of the set is disabled; clients are closed until one is enabled");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.level).toBe("warn");
  expect(warnings[0]!.disabled).toBe("a,b");
});

test.each([
  ["an empty set", [], [], false],
  ["no disabled id", ["a", "b"], [], false],
  ["one of two disabled", ["a", "b"], ["a"], false],
  ["both disabled", ["a", "b"], ["b", "a"], true],
  ["as many disabled ids as backends, one outside the set", ["a", "b"], ["a", "x"], false],
] as const)("DisabledBackends coversAll: %s", (_name, ids, disabledIds, expected) => {
  const disabled = new DisabledBackends();
  disabled.replace([...disabledIds]);

  expect(disabled.coversAll(setOf(...ids))).toBe(expected);
});

test("DisabledBackends replace reports only a real change", () => {
  const disabled = new DisabledBackends();
  let changes = 0;
  disabled.onChange(() => changes++);

  disabled.replace(["a", "b"]);
  disabled.replace(["b", "a"]);
  expect(changes).toBe(1);

  disabled.replace(["c"]);
  expect(disabled.ids()).toEqual(["c"]);
  expect(changes).toBe(2);
});

test("DisabledBackends keeps the origin of each mark", () => {
  const disabled = new DisabledBackends();
  let changes = 0;
  disabled.onChange(() => changes++);

  expect(disabled.disable("a", "config")).toBe(true);
  expect(disabled.originOf("a")).toBe("config");
  expect(changes).toBe(1);

  // An admin mark takes over a config mark, and counts as a change for the state file.
  expect(disabled.disable("a", "admin")).toBe(false);
  expect(disabled.originOf("a")).toBe("admin");
  expect(changes).toBe(2);

  // A config mark never takes over an admin mark.
  expect(disabled.disable("a", "config")).toBe(false);
  expect(disabled.originOf("a")).toBe("admin");
  expect(changes).toBe(2);

  expect(disabled.enable("a")).toBe(true);
  expect(disabled.originOf("a")).toBeUndefined();
});

import { describe, expect, test } from "bun:test";
import { BackendError, createBackend, describeBackend, MAX_ID_LENGTH } from "../src/backend.ts";
import { BackendSet, diffBackendSets } from "../src/backend-set.ts";

function set(...pairs: [string, string][]): BackendSet {
  return new BackendSet(pairs.map(([id, target]) => createBackend(id, target)));
}

describe("createBackend", () => {
  test("canonicalizes the target", () => {
    const backend = createBackend("api-1", " [::1]:6443");

    expect(backend.target).toBe("[::1]:6443");
    expect(backend.address).toEqual({ kind: "tcp", host: "::1", port: 6443 });
    expect(describeBackend(backend)).toBe('"api-1" ([::1]:6443)');
  });

  test.each([
    ["", "invalid backend id \"\""],
    ["-leading-dash", "starting with a letter or digit"],
    ["has space", "letters, digits or ._:@-"],
    ["x".repeat(MAX_ID_LENGTH + 1), `1 to ${MAX_ID_LENGTH}`],
  ])("rejects id %p", (id, detail) => {
    expect(() => createBackend(id, "127.0.0.1:1")).toThrow(BackendError);
    expect(() => createBackend(id, "127.0.0.1:1")).toThrow(detail);
  });

  test("rejects a bad target naming the id", () => {
    expect(() => createBackend("api-1", "nope")).toThrow(BackendError);
    expect(() => createBackend("api-1", "nope")).toThrow('invalid target for backend "api-1": invalid address "nope"');
  });
});

describe("BackendSet", () => {
  test("orders backends by id, whatever the input order", () => {
    const forward = set(["b", "127.0.0.1:2"], ["a", "127.0.0.1:1"], ["c", "127.0.0.1:3"]);
    const backward = set(["c", "127.0.0.1:3"], ["a", "127.0.0.1:1"], ["b", "127.0.0.1:2"]);

    expect(forward.backends.map((backend) => backend.id)).toEqual(["a", "b", "c"]);
    expect(forward.equals(backward)).toBe(true);
    expect(forward.describe()).toBe("a=127.0.0.1:1,b=127.0.0.1:2,c=127.0.0.1:3");
  });

  test("orders ids by code unit, so upper case sorts first", () => {
    const backends = set(["b", "127.0.0.1:1"], ["B", "127.0.0.1:1"], ["a10", "127.0.0.1:1"], ["a9", "127.0.0.1:1"]);

    expect(backends.backends.map((backend) => backend.id)).toEqual(["B", "a10", "a9", "b"]);
  });

  test("rejects a duplicate id naming both targets", () => {
    expect(() => set(["a", "127.0.0.1:1"], ["a", "127.0.0.1:2"])).toThrow(BackendError);
    expect(() => set(["a", "127.0.0.1:1"], ["a", "127.0.0.1:2"])).toThrow(
      'duplicate backend id "a": targets 127.0.0.1:1 and 127.0.0.1:2',
    );
  });

  test("lets two ids share a target", () => {
    const backends = set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:1"]);

    expect(backends.size).toBe(2);
    expect([...backends.targets]).toEqual(["127.0.0.1:1"]);
    expect(backends.hasTarget("127.0.0.1:1")).toBe(true);
    expect(backends.get("b")?.target).toBe("127.0.0.1:1");
  });

  test("is frozen", () => {
    const backends = set(["a", "127.0.0.1:1"]);

    expect(Object.isFrozen(backends.backends)).toBe(true);
  });

  test("equals compares ids and targets", () => {
    const base = set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:2"]);

    expect(base.equals(set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:2"]))).toBe(true);
    expect(base.equals(set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:3"]))).toBe(false);
    expect(base.equals(set(["a", "127.0.0.1:1"], ["c", "127.0.0.1:2"]))).toBe(false);
    expect(base.equals(set(["a", "127.0.0.1:1"]))).toBe(false);
    expect(BackendSet.EMPTY.equals(new BackendSet([]))).toBe(true);
  });
});

interface DiffCase {
  name: string;
  after: BackendSet;
  added: string[];
  removed: string[];
  retargeted: string[];
  removedTargets: string[];
}

describe("diffBackendSets", () => {
  const before = set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:2"], ["c", "127.0.0.1:3"], ["d", "127.0.0.1:4"]);

  test.each<DiffCase>([
    {
      name: "no change",
      after: before,
      added: [],
      removed: [],
      retargeted: [],
      removedTargets: [],
    },
    {
      name: "add one",
      after: set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:2"], ["c", "127.0.0.1:3"], ["d", "127.0.0.1:4"], ["e", "127.0.0.1:5"]),
      added: ["e"],
      removed: [],
      retargeted: [],
      removedTargets: [],
    },
    {
      name: "remove one",
      after: set(["a", "127.0.0.1:1"], ["c", "127.0.0.1:3"], ["d", "127.0.0.1:4"]),
      added: [],
      removed: ["b"],
      retargeted: [],
      removedTargets: ["127.0.0.1:2"],
    },
    {
      name: "change a target",
      after: set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:9"], ["c", "127.0.0.1:3"], ["d", "127.0.0.1:4"]),
      added: [],
      removed: [],
      retargeted: ["b:127.0.0.1:2>127.0.0.1:9"],
      removedTargets: ["127.0.0.1:2"],
    },
    {
      name: "remove an id whose target another id keeps",
      after: set(["a", "127.0.0.1:1"], ["b", "127.0.0.1:2"], ["c", "127.0.0.1:2"], ["d", "127.0.0.1:4"]),
      added: [],
      removed: [],
      retargeted: ["c:127.0.0.1:3>127.0.0.1:2"],
      removedTargets: ["127.0.0.1:3"],
    },
    {
      name: "empty",
      after: BackendSet.EMPTY,
      added: [],
      removed: ["a", "b", "c", "d"],
      retargeted: [],
      removedTargets: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"],
    },
  ])("$name", ({ after, added, removed, retargeted, removedTargets }) => {
    const change = diffBackendSets(before, after);

    expect(change.added.map((backend) => backend.id)).toEqual(added);
    expect(change.removed.map((backend) => backend.id)).toEqual(removed);
    expect(change.retargeted.map(({ backend, oldTarget }) => `${backend.id}:${oldTarget}>${backend.target}`)).toEqual(retargeted);
    expect(change.removedTargets).toEqual(removedTargets);
  });
});

import { describe, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { DisabledBackends } from "../src/disabled-backends.ts";
import { RoundRobinSelector, type SharedTurns } from "../src/round-robin-selector.ts";

function set(...ids: string[]): BackendSet {
  return new BackendSet(ids.map((id, index) => createBackend(id, `127.0.0.1:${1000 + index}`)));
}

function picks(selector: RoundRobinSelector, count: number): (string | undefined)[] {
  return Array.from({ length: count }, () => selector.next()?.id);
}

describe("RoundRobinSelector", () => {
  test("yields nothing for an empty set", () => {
    const selector = new RoundRobinSelector();

    expect(selector.next()).toBeUndefined();
    expect(selector.following("a", () => true)).toBeUndefined();
  });

  test("hands out a fixed set in id order, wrapping", () => {
    const selector = new RoundRobinSelector(set("c", "a", "d", "b"));

    expect(picks(selector, 9)).toEqual(["a", "b", "c", "d", "a", "b", "c", "d", "a"]);
  });

  test("keeps its place through add, remove and target change", () => {
    const selector = new RoundRobinSelector(set("a", "b", "c"));

    // a b handed out; the last id is b.
    expect(picks(selector, 2)).toEqual(["a", "b"]);

    // Add d: the rotation continues after b, so c then the new d.
    selector.update(set("a", "b", "c", "d"));
    expect(picks(selector, 3)).toEqual(["c", "d", "a"]);

    // Remove b, the next in line: the pick moves on to c.
    selector.update(set("a", "c", "d"));
    expect(picks(selector, 2)).toEqual(["c", "d"]);

    // Change c's target: same id, so its place is unchanged.
    selector.update(new BackendSet([createBackend("a", "127.0.0.1:1"), createBackend("c", "127.0.0.1:9"), createBackend("d", "127.0.0.1:3")]));
    const next = picks(selector, 3);
    expect(next).toEqual(["a", "c", "d"]);

    // Remove the id handed out last (d): the rotation wraps to the first id.
    selector.update(set("a", "c"));
    expect(picks(selector, 2)).toEqual(["a", "c"]);

    // Empty set yields nothing; a new set afterwards resumes after the last id (c).
    selector.update(BackendSet.EMPTY);
    expect(selector.next()).toBeUndefined();
    selector.update(set("a", "b", "c", "e"));
    expect(picks(selector, 4)).toEqual(["e", "a", "b", "c"]);
  });

  test("reaches every backend of a new set within one cycle", () => {
    const selector = new RoundRobinSelector(set("a", "b", "c", "d", "e"));
    picks(selector, 3);

    const replacement = set("b", "bb", "d", "x", "y");
    selector.update(replacement);
    const cycle = picks(selector, replacement.size);

    expect(new Set(cycle)).toEqual(new Set(["b", "bb", "d", "x", "y"]));
    expect(cycle).toEqual(["d", "x", "y", "b", "bb"]);
  });

  test("next passes over rejected backends for one cycle", () => {
    const selector = new RoundRobinSelector(set("a", "b", "c"));

    expect(selector.next((backend) => backend.id !== "a")?.id).toBe("b");
    expect(selector.next((backend) => backend.id !== "c")?.id).toBe("a");
    expect(selector.next(() => false)).toBeUndefined();
    expect(selector.next()?.id).toBe("b");
  });

  test("following fails over without moving the rotation", () => {
    const selector = new RoundRobinSelector(set("a", "b", "c", "d"));
    expect(selector.next()?.id).toBe("a");

    expect(selector.following("a", () => true)?.id).toBe("b");
    expect(selector.following("d", () => true)?.id).toBe("a");
    expect(selector.following("b", (backend) => backend.id !== "c")?.id).toBe("d");
    expect(selector.following("gone", () => true)?.id).toBe("a");
    expect(selector.following("a", () => false)).toBeUndefined();

    expect(selector.next()?.id).toBe("b");
  });

  test("passes over disabled ids, keeping its place", () => {
    const disabled = new DisabledBackends();
    const selector = new RoundRobinSelector(set("a", "b", "c", "d"), undefined, disabled);
    expect(picks(selector, 1)).toEqual(["a"]);

    // Disable b, the next in line: the rotation moves on to c and never hands b out.
    disabled.disable("b");
    expect(picks(selector, 6)).toEqual(["c", "d", "a", "c", "d", "a"]);

    // Enable b after a: b is next, so every backend is reached within one cycle of 4.
    disabled.enable("b");
    expect(picks(selector, 4)).toEqual(["b", "c", "d", "a"]);

    // Enable in the middle of a cycle: after c, the rotation reaches d, a and b in turn.
    disabled.disable("b");
    disabled.disable("d");
    expect(picks(selector, 3)).toEqual(["c", "a", "c"]);
    disabled.enable("b");
    disabled.enable("d");
    expect(picks(selector, 4)).toEqual(["d", "a", "b", "c"]);

    // Every id disabled: nothing is handed out.
    for (const id of ["a", "b", "c", "d"]) {
      disabled.disable(id);
    }
    expect(selector.next()).toBeUndefined();
  });

  test("following skips disabled ids", () => {
    const disabled = new DisabledBackends();
    const selector = new RoundRobinSelector(set("a", "b", "c"), undefined, disabled);
    disabled.disable("b");

    expect(selector.following("a", () => true)?.id).toBe("c");
    expect(selector.following("c", () => true)?.id).toBe("a");
    expect(selector.following("a", (backend) => backend.id !== "c")?.id).toBe("a");
    disabled.disable("a");
    disabled.disable("c");
    expect(selector.following("a", () => true)).toBeUndefined();
  });

  test("threads sharing turns pass over disabled ids", () => {
    let turn = 0;
    const turns: SharedTurns = {
      takeTurns(count = 1) {
        const first = turn;
        turn += count;

        return first;
      },
      returnTurn() {
        turn--;
      },
    };
    const disabled = new DisabledBackends();
    const backends = set("a", "b", "c");
    const threads = [new RoundRobinSelector(backends, turns, disabled), new RoundRobinSelector(backends, turns, disabled)];
    const alternate = (count: number): (string | undefined)[] => Array.from({ length: count }, (_, index) => threads[index % 2]!.next()?.id);

    expect(alternate(2)).toEqual(["a", "b"]);
    disabled.disable("c");
    expect(alternate(4)).toEqual(["a", "b", "a", "b"]);
    disabled.enable("c");
    expect(alternate(3)).toEqual(["c", "a", "b"]);
  });
});

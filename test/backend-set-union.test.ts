import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { BackendSetUnion } from "../src/backend-set-union.ts";
import { Logger } from "../src/logger.ts";

function set(pairs: Record<string, string>): BackendSet {
  return new BackendSet(Object.entries(pairs).map(([id, target]) => createBackend(id, target)));
}

function recordingUnion(): { union: BackendSetUnion; applied: { set: string; cause: string }[]; lines: string[] } {
  const applied: { set: string; cause: string }[] = [];
  const lines: string[] = [];
  const logger = new Logger({ sink: (line) => lines.push(line) });
  const union = new BackendSetUnion((next, cause) => applied.push({ set: next.describe(), cause }), logger);

  return { union, applied, lines };
}

test("BackendSetUnion merges providers keyed by id", () => {
  const { union, applied } = recordingUnion();
  const publishStatic = union.register("static");
  const publishDns = union.register("dns");

  publishStatic(set({ a: "10.0.0.1:1" }));
  publishDns(set({ b: "10.0.0.2:1" }));

  expect(applied).toEqual([
    { set: "a=10.0.0.1:1", cause: "static" },
    { set: "a=10.0.0.1:1,b=10.0.0.2:1", cause: "dns" },
  ]);
  expect(union.providerOf("a")).toBe("static");
  expect(union.providerOf("b")).toBe("dns");
});

test("BackendSetUnion applies nothing when the union is unchanged", () => {
  const { union, applied } = recordingUnion();
  const publishStatic = union.register("static");
  const publishDns = union.register("dns");
  publishStatic(set({ a: "10.0.0.1:1" }));

  publishStatic(set({ a: "10.0.0.1:1" }));
  publishDns(set({ a: "10.0.0.1:1" }));
  publishDns(set({}));

  expect(applied.length).toBe(1);
});

test("BackendSetUnion keeps the first provider on a conflict", () => {
  const { union, applied, lines } = recordingUnion();
  const publishFile = union.register("file");
  const publishApi = union.register("api");
  publishFile(set({ a: "10.0.0.1:1" }));

  publishApi(set({ a: "10.0.0.9:1", b: "10.0.0.2:1" }));
  publishApi(set({ a: "10.0.0.9:1", b: "10.0.0.2:1", c: "10.0.0.3:1" }));

  expect(applied.at(-1)?.set).toBe("a=10.0.0.1:1,b=10.0.0.2:1,c=10.0.0.3:1");
  expect(union.conflicts).toEqual([{ id: "a", kept: { provider: "file", target: "10.0.0.1:1" }, ignored: { provider: "api", target: "10.0.0.9:1" } }]);
  const warnings = lines.filter((line) => line.includes("backend id conflict"));
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toContain("backend=a provider=file target=10.0.0.1:1 ignoredProvider=api ignoredTarget=10.0.0.9:1");
});

test("BackendSetUnion drops a conflict once resolved", () => {
  const { union } = recordingUnion();
  const publishFile = union.register("file");
  const publishApi = union.register("api");
  publishFile(set({ a: "10.0.0.1:1" }));
  publishApi(set({ a: "10.0.0.9:1" }));
  expect(union.conflicts.length).toBe(1);

  publishApi(set({ a: "10.0.0.1:1" }));

  expect(union.conflicts).toEqual([]);
  expect(union.providerOf("a")).toBe("file");
});

test("BackendSetUnion serves a seed until its provider publishes", () => {
  const { union, applied } = recordingUnion();
  const publishStatic = union.register("static");
  const publishDns = union.register("dns:api.test:443");
  publishStatic(set({ s: "10.0.0.1:1" }));

  const unused = union.seed(new Map([
    ["dns:api.test:443", set({ d1: "10.0.1.1:443" })],
    ["static", set({ old: "10.0.9.9:1" })],
    ["gone", set({ g: "10.0.8.8:1" })],
  ]));

  expect(unused.unknown).toEqual(["gone"]);
  expect(unused.superseded).toEqual(["static"]);
  expect(union.set.describe()).toBe("d1=10.0.1.1:443,s=10.0.0.1:1");
  expect(union.slots.find((slot) => slot.name === "dns:api.test:443")?.published).toBe(false);

  publishDns(set({ d2: "10.0.1.2:443" }));

  expect(union.set.describe()).toBe("d2=10.0.1.2:443,s=10.0.0.1:1");
  expect(applied.length).toBe(3);
});

test("BackendSetUnion batch applies once", async () => {
  const { union, applied } = recordingUnion();
  const publishA = union.register("a");
  const publishB = union.register("b");

  await union.batch("start", async () => {
    publishA(set({ a: "10.0.0.1:1" }));
    publishB(set({ b: "10.0.0.2:1" }));
  });

  // The change names the providers that hold backends; "start" is only for none.
  expect(applied).toEqual([{ set: "a=10.0.0.1:1,b=10.0.0.2:1", cause: "a,b" }]);
});

test("BackendSetUnion rejects a duplicate provider name", () => {
  const { union } = recordingUnion();
  union.register("file");

  expect(() => union.register("file")).toThrow('provider "file" is registered twice');
});

test("BackendSetUnion notifies listeners after applying", () => {
  const { union, applied } = recordingUnion();
  const seen: string[] = [];
  union.onChange((next) => seen.push(`${next.describe()} after ${applied.length}`));
  const publish = union.register("static");

  publish(set({ a: "10.0.0.1:1" }));
  publish(set({ a: "10.0.0.1:1" }));

  expect(seen).toEqual(["a=10.0.0.1:1 after 1"]);
});

test("BackendSetUnion seed ignores identical published sets", () => {
  const { union } = recordingUnion();
  const publishApi = union.register("api");
  publishApi(set({ x: "10.0.0.2:1" }));

  // The provider already published the saved set itself, so nothing of it is lost.
  const unused = union.seed(new Map([["api", set({ x: "10.0.0.2:1" })]]));

  expect(unused).toEqual({ unknown: [], superseded: [] });
  expect(union.set.describe()).toBe("x=10.0.0.2:1");
});

test("BackendSetUnion marks a provider's first set", async () => {
  const firstSets: [string, boolean][] = [];
  const union = new BackendSetUnion((_next, cause, firstSet) => firstSets.push([cause, firstSet]));
  const publishStatic = union.register("static");
  const publishDns = union.register("dns");

  // Held back by the batch, the start-up sets count as no provider's first.
  await union.batch("static,dns", async () => publishStatic(set({ a: "10.0.0.1:1" })));
  publishDns(set({ b: "10.0.0.2:1" }));
  publishDns(set({ b: "10.0.0.2:1", c: "10.0.0.3:1" }));
  publishStatic(set({ a: "10.0.0.1:1", d: "10.0.0.4:1" }));

  expect(firstSets).toEqual([
    ["static", false],
    ["dns", true],
    ["dns", false],
    ["static", false],
  ]);
});

test("BackendSetUnion names the provider that outranks an id", async () => {
  const { union } = recordingUnion();
  const publishStatic = union.register("static");
  const publishFile = union.register("file");
  const publishApi = union.register("api");

  // Inside batch the union is not recomputed yet, but the providers' sets are read.
  await union.batch("start", async () => {
    publishStatic(set({ a: "10.0.0.1:1", b: "10.0.0.2:1" }));
    publishFile(set({ a: "10.0.0.9:1", b: "10.0.0.2:1", c: "10.0.0.3:1" }));
    publishApi(set({ c: "10.0.0.4:1", d: "10.0.0.5:1" }));

    expect(union.outrankingProvider("file", "a")).toBe("static");
  });

  expect(union.outrankingProvider("file", "a")).toBe("static"); // another target
  expect(union.outrankingProvider("file", "b")).toBe("static"); // the same target
  expect(union.outrankingProvider("file", "c")).toBeUndefined(); // api comes after file
  expect(union.outrankingProvider("file", "x")).toBeUndefined();
  expect(union.outrankingProvider("api", "c")).toBe("file");
  expect(union.outrankingProvider("static", "a")).toBeUndefined();
});

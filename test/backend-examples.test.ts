import { expect, test } from "bun:test";
import { z } from "zod";
import { backendExample, backendListExample } from "../src/backend-examples.ts";

/** A list schema whose entries have more keys than id and target, behind a transform, as the config file's. */
const configList = z.array(
  z.strictObject({ id: z.string(), target: z.string(), slowStart: z.string().optional(), disabled: z.boolean().optional() }).transform((entry) => entry.id),
);
/** A list schema whose entries are not objects, as the admin API's, so only id and target are entry keys. */
const adminList = z.array(z.unknown());

test.each<[string, unknown, string | undefined]>([
  ["one entry", { id: "a", target: "10.0.0.1:6443" }, "{ id: a, target: 10.0.0.1:6443 }"],
  ["one entry without id", { target: "10.0.0.1:6443" }, "{ id: api-1, target: 10.0.0.1:6443 }"],
  ["ids to targets", { a: "10.0.0.1:6443", b: "10.0.0.2:6443", c: "10.0.0.3:6443" }, "{ id: a, target: 10.0.0.1:6443 }, { id: b, target: 10.0.0.2:6443 }"],
  ["ids to entries", { a: { target: "10.0.0.1:6443" } }, "{ id: a, target: 10.0.0.1:6443 }"],
  ["target beside ids", { target: "10.0.0.1:6443", api: "10.0.0.2:6443" }, "{ id: api-1, target: 10.0.0.1:6443 }, { id: api, target: 10.0.0.2:6443 }"],
  ["ids before target", { api: "10.0.0.2:6443", id: "web", target: "10.0.0.1:6443" }, "{ id: api, target: 10.0.0.2:6443 }, { id: web, target: 10.0.0.1:6443 }"],
  ["entry keys beside ids", { target: "10.0.0.1:6443", slowStart: "30s", disabled: true, api: "10.0.0.2:6443" }, "{ id: api-1, target: 10.0.0.1:6443 }, { id: api, target: 10.0.0.2:6443 }"],
  ["id without target", { target: "10.0.0.1:6443", api: 5 }, "{ id: api-1, target: 10.0.0.1:6443 }"],
  ["empty mapping", {}, "{ id: api-1, target: 10.0.0.1:6443 }"],
  ["not a mapping", ["10.0.0.1:6443"], undefined],
])("backendListExample: %s", (_, mapping, expected) => {
  expect(backendListExample("yaml", mapping, configList)).toBe(expected);
});

test("backendListExample with untyped entries", () => {
  // The admin API's entries have no slowStart key, so it reads as an id there.
  expect(backendListExample("json", { target: "127.0.0.1:1", slowStart: "127.0.0.1:2" }, adminList)).toBe(
    '{"id": "api-1", "target": "127.0.0.1:1"}, {"id": "slowStart", "target": "127.0.0.1:2"}',
  );
});

test("backendExample writes each syntax", () => {
  expect(backendExample("yaml", "api=[::1]:8080")).toBe('{ id: api, target: "[::1]:8080" }');
  expect(backendExample("toml", "api=10.0.0.1:6443")).toBe('{ id = "api", target = "10.0.0.1:6443" }');
  expect(backendExample("json", "word")).toBe('{"id": "api-1", "target": "10.0.0.1:6443"}');
});

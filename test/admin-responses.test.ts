import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { checkAdminResponse } from "../src/admin-responses.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { runTinylb } from "./support/tinylb-process.ts";

const directory = tempDirectory("tinylb-admin-responses-");

/** The smallest status a balancer from before the optional fields sends. */
const OLD_STATUS = {
  listeners: ["127.0.0.1:7070"],
  backends: [{ id: "a", target: "127.0.0.1:9", provider: "static", active: 0, total: 0, bytesToBackend: 0, bytesToClient: 0, health: "unchecked" }],
  removed: [],
  conflicts: [],
  providers: [{ name: "static", backends: 1 }],
};

/** What a program that is not tinylb may send on the admin socket: fields of its own, or of another API. */
const FOREIGN_STATUS = { process: { version: "9.9.9" }, backends: [{ name: "a" }] };

/** Responses of the fake admin API, by method and path; anything else gets 404. */
const responses = new Map<string, unknown>([
  ["GET /v1/backends", FOREIGN_STATUS],
  ["PUT /v1/backends/x", { ok: true }],
  ["DELETE /v1/backends/x", { id: "x" }],
  ["PUT /v1/backends/x/state", { id: "x", target: "127.0.0.1:1", state: "paused", changed: true }],
  ["PUT /v1/backends/old", { id: "old", target: "127.0.0.1:1" }],
]);

const socket = join(directory, "fake-admin.sock");
const fake = Bun.serve({
  unix: socket,
  fetch(request) {
    const key = `${request.method} ${new URL(request.url).pathname}`;
    const body = responses.get(key);

    return body === undefined ? Response.json({ error: "not found" }, { status: 404 }) : Response.json(body);
  },
});
afterAll(() => fake.stop(true));

test.each([
  ["status", ["status"], "listeners: missing"],
  ["add", ["add", "x", "127.0.0.1:1"], "id: missing"],
  ["remove", ["remove", "x"], "target: missing"],
  ["disable", ["disable", "x"], 'state: must be one of "enabled", "disabled"'],
])("%s rejects a response of another shape", async (name, args, detail) => {
  const result = await runTinylb([...args, "--admin", `unix:${socket}`]);

  expect(result.exitCode).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`tinylb ${name}: the response from unix:${socket} is not a tinylb balancer's (${detail}); pass --admin ADDR with the balancer's admin address\n`);
});

test("add accepts an older balancer's response", async () => {
  const result = await runTinylb(["add", "old", "127.0.0.1:1", "--admin", `unix:${socket}`]);

  expect(result.stderr).toBe("");
  expect(result.stdout).toBe('backend "old" dials 127.0.0.1:1\n');
  expect(result.exitCode).toBe(0);
});

test("checkAdminResponse accepts an older balancer's status", () => {
  expect(checkAdminResponse("GET", "/v1/backends", OLD_STATUS)).toBe(OLD_STATUS);
});

test("checkAdminResponse keeps fields of a newer balancer", () => {
  const newer = { ...OLD_STATUS, futureField: { nested: 1 } };

  expect(checkAdminResponse("GET", "/v1/backends", newer)).toEqual(newer);
});

test.each([
  ["a status without removed", "GET", "/v1/backends", { ...OLD_STATUS, removed: undefined }, "removed: missing"],
  ["a backend without health", "GET", "/v1/backends", { ...OLD_STATUS, backends: [{ ...OLD_STATUS.backends[0], health: undefined }] }, "backends[0].health: missing"],
  ["a count as text", "GET", "/v1/backends", { ...OLD_STATUS, backends: [{ ...OLD_STATUS.backends[0], active: "3" }] }, 'backends[0].active: expected a number without quotes, got the string "3"'],
  ["an array for an object", "PUT", "/v1/backends/x", [], "the response: expected an object, got a list"],
  ["null", "DELETE", "/v1/backends/x", null, "the response: expected an object, got null"],
])("checkAdminResponse rejects %s", (_name, method, path, response, message) => {
  expect(() => checkAdminResponse(method, path, response)).toThrow(message);
});

test("checkAdminResponse leaves other routes unchecked", () => {
  expect(checkAdminResponse("GET", "/readyz", "anything")).toBe("anything");
});

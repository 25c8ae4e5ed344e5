import { expect, test } from "bun:test";
import { networkInterfaces } from "node:os";
import { parseAddress } from "../src/address.ts";
import { createBackend } from "../src/backend.ts";
import { findSelfTarget } from "../src/self-target.ts";

test.each([
  ["127.0.0.1:7443", "127.0.0.1:7443", true],
  ["localhost:7443", "127.0.0.1:7443", true],
  ["127.0.0.1:7443", "localhost:7443", true],
  ["[::1]:7443", "localhost:7443", true],
  ["127.0.0.1:7443", "0.0.0.0:7443", true],
  ["127.0.0.2:7443", "0.0.0.0:7443", true],
  ["[::1]:7443", "[::]:7443", true],
  ["127.0.0.1:7443", "[::]:7443", true],
  ["[::1]:7443", "0.0.0.0:7443", false],
  ["127.0.0.1:7444", "127.0.0.1:7443", false],
  ["127.0.0.2:7443", "127.0.0.1:7443", false],
  ["10.255.0.1:7443", "127.0.0.1:7443", false],
  ["api.internal:7443", "0.0.0.0:7443", false],
  ["unix:/run/tinylb.sock", "unix:/run/tinylb.sock", true],
  ["unix:/run/tinylb.sock", "unix:/run/./tinylb.sock", true],
  ["unix:/run/app.sock", "unix:/run/tinylb.sock", false],
  ["unix:/run/tinylb.sock", "127.0.0.1:7443", false],
])("target %s with listener %s loops: %p", (target, listener, loops) => {
  const found = findSelfTarget([createBackend("self", target)], [parseAddress(listener, true)]);

  expect(found !== undefined).toBe(loops);
});

test("findSelfTarget names the backend, its target and the listener", () => {
  const backends = [createBackend("ok", "127.0.0.1:9000"), createBackend("self", "localhost:7443")];

  expect(findSelfTarget(backends, [parseAddress("127.0.0.1:7443")])).toBe(
    `backend "self" has target localhost:7443, which is tinylb's own listen address 127.0.0.1:7443, so its connections would loop back into tinylb; use the backend's own address`,
  );
});

test("findSelfTarget skips listeners on port 0", () => {
  expect(findSelfTarget([createBackend("a", "127.0.0.1:1")], [parseAddress("127.0.0.1:0", true)])).toBeUndefined();
});

test("findSelfTarget matches an interface address under a wildcard listener", () => {
  const ipv4 = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry?.family === "IPv4" && !entry.address.startsWith("127."));
  if (ipv4 === undefined) {
    // NOTE: a machine with loopback alone has no other IPv4 address to check.
    return;
  }

  expect(findSelfTarget([createBackend("self", `${ipv4.address}:7443`)], [parseAddress("0.0.0.0:7443")])).toContain('backend "self"');
});

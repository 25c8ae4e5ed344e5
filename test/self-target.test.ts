import { afterAll, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { parseAddress } from "../src/address.ts";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { findSelfTarget, skipSelfTargets } from "../src/self-target.ts";
import { LogLines } from "./support/log-lines.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-self-target-");
mkdirSync(join(directory, "listen"));
symlinkSync(join(directory, "listen"), join(directory, "wl"));
symlinkSync("self.sock", join(directory, "listen", "link.sock"));
symlinkSync("bound.sock", join(directory, "listen", "bound-link.sock"));
// A bound socket file: the check passes over a path that exists but is not a socket.
const bound = Bun.listen({ unix: join(directory, "listen", "bound.sock"), socket: { data() {} } });
afterAll(() => bound.stop(true));

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
  ["[0:0::1]:7443", "[::1]:7443", true],
  ["[::1]:7443", "[0:0:0:0:0:0:0:1]:7443", true],
  ["[::ffff:127.0.0.1]:7443", "127.0.0.1:7443", true],
  ["[0:0::ffff:7f00:1]:7443", "localhost:7443", true],
  ["127.0.0.1:7443", "[::ffff:127.0.0.1]:7443", true],
  ["[::ffff:127.0.0.2]:7443", "0.0.0.0:7443", true],
  ["[::1]:7443", "[0::]:7443", true],
  ["[::ffff:127.0.0.2]:7443", "127.0.0.1:7443", false],
  ["[::2]:7443", "[::1]:7443", false],
  ["unix:/run/tinylb.sock", "unix:/run/tinylb.sock", true],
  ["unix:/run/tinylb.sock", "unix:/run/./tinylb.sock", true],
  ["unix:/run/app.sock", "unix:/run/tinylb.sock", false],
  ["unix:/run/tinylb.sock", "127.0.0.1:7443", false],
])("target %s with listener %s loops: %p", (target, listener, loops) => {
  const found = findSelfTarget([createBackend("self", target)], [parseAddress(listener, true)]);

  expect(found !== undefined).toBe(loops);
});

test.each([
  ["a symlinked folder", "wl/self.sock", "listen/self.sock", true],
  ["a symlinked folder as the listener", "listen/self.sock", "wl/self.sock", true],
  ["a path with .. after the symlink", "wl/../wl/self.sock", "listen/self.sock", true],
  ["another file in a symlinked folder", "wl/other.sock", "listen/self.sock", false],
  // connect(2) follows a symlink to a socket file that exists.
  ["a symlink to the bound socket file", "listen/bound-link.sock", "listen/bound.sock", true],
  ["a symlink to a socket file not bound yet", "listen/link.sock", "listen/self.sock", true],
  ["a symlink to another socket file", "listen/link.sock", "listen/bound.sock", false],
  ["a missing folder, compared as text", "missing/./self.sock", "missing/self.sock", true],
  ["another missing folder", "missing/self.sock", "gone/self.sock", false],
])("Unix target through %s loops: %p", (_, target, listener, loops) => {
  // Concatenated rather than joined, so that `..` and `.` reach the check unchanged.
  const backend = createBackend("self", `unix:${directory}/${target}`);
  const found = findSelfTarget([backend], [parseAddress(`unix:${directory}/${listener}`)]);

  expect(found !== undefined).toBe(loops);
});

test("findSelfTarget names the backend, its target and the listener", () => {
  const backends = [createBackend("ok", "127.0.0.1:9000"), createBackend("self", "localhost:7443")];

  expect(findSelfTarget(backends, [parseAddress("127.0.0.1:7443")])).toBe(
    `backend "self" has target localhost:7443, which is tinylb's own listen address 127.0.0.1:7443, so its connections would loop back into tinylb; use the backend's own address`,
  );
});

test("findSelfTarget passes over a regular file", () => {
  const file = join(directory, "listen", "regular.sock");
  writeFileSync(file, "");

  expect(findSelfTarget([createBackend("file", `unix:${file}`)], [parseAddress(`unix:${file}`)])).toBeUndefined();
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

test("skipSelfTargets leaves looping backends out", () => {
  const log = new LogLines();
  const published: string[] = [];
  const listen = [parseAddress("127.0.0.1:7443")];
  const publish = skipSelfTargets("etcd:/lb/", (set) => published.push(set.describe()), { listen: () => listen, control: () => [] }, log.logger);
  const ok = createBackend("ok", "127.0.0.1:9000");
  const self = createBackend("self", "[::ffff:127.0.0.1]:7443");

  publish(new BackendSet([ok, self]));
  expect(published).toEqual(["ok=127.0.0.1:9000"]);
  const warnings = log.withMessage("skipping a backend whose target is tinylb's own listen address");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.provider).toBe("etcd:/lb/");
  expect(warnings[0]!.backend).toBe("self");
  expect(warnings[0]!.target).toBe("[::ffff:127.0.0.1]:7443");
  expect(String(warnings[0]!.err)).toContain("which is tinylb's own listen address 127.0.0.1:7443");
});

test("skipSelfTargets warns again only after a return", () => {
  const log = new LogLines();
  const published: string[] = [];
  const publish = skipSelfTargets("dns:api:7443", (set) => published.push(set.describe()), { listen: () => [parseAddress("[::1]:7443")], control: () => [] }, log.logger);
  const ok = createBackend("ok", "127.0.0.1:9000");
  const self = createBackend("self", "[0:0::1]:7443");
  const warnings = () => log.withMessage("skipping a backend whose target is tinylb's own listen address").length;

  publish(new BackendSet([ok, self])); // self appears: one warning
  publish(new BackendSet([ok, self])); // still there: no new warning
  expect(warnings()).toBe(1);
  publish(new BackendSet([ok])); // self left
  publish(new BackendSet([ok, self])); // self is back: warned again
  expect(warnings()).toBe(2);
  expect(published).toEqual(["ok=127.0.0.1:9000", "ok=127.0.0.1:9000", "ok=127.0.0.1:9000", "ok=127.0.0.1:9000"]);
});

test("skipSelfTargets passes a set without loops unchanged", () => {
  const published: BackendSet[] = [];
  const publish = skipSelfTargets("etcd:/lb/", (set) => published.push(set), { listen: () => [parseAddress("127.0.0.1:7443")], control: () => [] }, new LogLines().logger);
  const set = new BackendSet([createBackend("a", "127.0.0.1:9000")]);

  publish(set);
  expect(published).toEqual([set]);
  expect(published[0]).toBe(set);
});

test("findSelfTarget names a control address", () => {
  const admin = { role: "admin API" as const, address: parseAddress("unix:/run/tinylb/admin.sock") };
  const metrics = { role: "metrics server" as const, address: parseAddress("0.0.0.0:9100") };
  const listen = [parseAddress("127.0.0.1:7443")];

  expect(findSelfTarget([createBackend("adm", "unix:/run/tinylb/admin.sock")], listen, [admin, metrics])).toBe(
    `backend "adm" has target unix:/run/tinylb/admin.sock, which is tinylb's own admin API address unix:/run/tinylb/admin.sock, so clients of the listeners would reach the admin API through the balancer; use the backend's own address`,
  );
  expect(findSelfTarget([createBackend("m", "localhost:9100")], listen, [admin, metrics])).toContain("tinylb's own metrics server address 0.0.0.0:9100");
  expect(findSelfTarget([createBackend("ok", "127.0.0.1:9101")], listen, [admin, metrics])).toBeUndefined();
});

test("skipSelfTargets leaves control and Unix targets out", () => {
  const log = new LogLines();
  const published: string[] = [];
  const own = { listen: () => [parseAddress("127.0.0.1:7443")], control: () => [{ role: "metrics server" as const, address: parseAddress("127.0.0.1:9100") }] };
  const publish = skipSelfTargets("etcd:/lb/", (set) => published.push(set.describe()), own, log.logger);

  publish(new BackendSet([createBackend("ok", "127.0.0.1:9000"), createBackend("m", "127.0.0.1:9100"), createBackend("sock", "unix:/run/app.sock")]));

  expect(published).toEqual(["ok=127.0.0.1:9000"]);
  const control = log.withMessage("skipping a backend whose target is tinylb's own admin API or metrics address");
  expect(control.length).toBe(1);
  expect(control[0]!.backend).toBe("m");
  const unix = log.withMessage("skipping a backend with a Unix socket target, which only flags, the config file and the admin API may set");
  expect(unix.length).toBe(1);
  expect(unix[0]!.backend).toBe("sock");
  expect(String(unix[0]!.err)).toBe('backend "sock" has the Unix socket target unix:/run/app.sock, which a network provider may not publish; set it with --backend, the config file or the admin API');
});

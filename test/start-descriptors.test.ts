import { expect, test } from "bun:test";
import { parseListenAddress } from "../src/address.ts";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import type { HealthCheckSettings } from "../src/health-checker.ts";
import { parseAdminAddress } from "../src/provider-settings.ts";
import { DEFAULTS, type Settings } from "../src/settings.ts";
import { descriptorRoomProblem, probeDescriptors, requiredDescriptorLimit, startDescriptors } from "../src/start-descriptors.ts";

/** Settings with the listen addresses, workers, admin and metrics addresses given, and defaults otherwise. */
function settingsOf(listen: string[], workers: number, admin = "off", metrics = "off"): Settings {
  return {
    ...DEFAULTS,
    listen: listen.map(parseListenAddress),
    workers,
    backends: BackendSet.EMPTY,
    health: { check: {} },
    providers: { admin: parseAdminAddress(admin), metrics: metrics === "off" ? "off" : parseListenAddress(metrics) },
  } as unknown as Settings;
}

/** Settings of one thread with `count` backends, `a0` to `a<count - 1>`, and the probe settings `check`. */
function probedSettingsOf(count: number, check: HealthCheckSettings): Settings {
  const backends = new BackendSet(Array.from({ length: count }, (_, index) => createBackend(`a${index}`, `127.0.0.1:${10_000 + index}`)));

  return { ...settingsOf(["127.0.0.1:7443"], 1), backends, health: { check } } as unknown as Settings;
}

test.each([
  // A copy of stderr, and for one listener its socket and lock. Each worker: 3 descriptors and its own listener socket.
  [["127.0.0.1:7443"], 1, "off", "off", false, 13],
  [["127.0.0.1:7443"], 8, "off", "off", false, 41],
  [["127.0.0.1:7443", "127.0.0.2:7443"], 3, "off", "off", false, 25],
  // A listener on port 0 locks the port it binds. A Unix socket listener has no lock and no worker socket.
  [["127.0.0.1:0"], 2, "off", "off", false, 17],
  [["unix:/run/lb.sock", "127.0.0.1:7443"], 2, "off", "off", false, 18],
  // With Unix listeners only, the main thread relays alone.
  [["unix:/run/lb.sock"], 4, "off", "off", false, 12],
  // An admin API on a Unix socket also starts an event loop; on TCP it is one socket, as is metrics.
  [["127.0.0.1:7443"], 1, "unix:/run/tinylb/admin.sock", "off", false, 16],
  [["127.0.0.1:7443"], 1, "127.0.0.1:9901", "127.0.0.1:9180", true, 16],
])("startDescriptors of %p with %d workers, admin %s, metrics %s, watch %p is %d", (listen, workers, admin, metrics, watch, expected) => {
  expect(startDescriptors(settingsOf(listen, workers, admin, metrics), watch, 10)).toBe(expected);
});

test.each([
  // Below 256 the reserve is 8, so the limit needs the start's descriptors, 2 for a connection and 8.
  [10, 20],
  [38, 48],
  // From 288 on the reserve is 1/32 of the limit.
  [300, 311],
  [1050, 1085],
])("requiredDescriptorLimit for %d open descriptors is %d", (open, limit) => {
  expect(requiredDescriptorLimit(open)).toBe(limit);
});

test.each([
  // Below 256 the caps are 4 each: 10 open, 2 for a connection, the reserve of 8, and 4 per server.
  [10, 1, 24],
  [10, 2, 28],
  // 300 open: the reserve is 11 and the caps 22 each at the limit of 357.
  [300, 2, 357],
  // From a limit of 1024 on, each cap is 64.
  [1050, 2, 1218],
])("requiredDescriptorLimit for %d open descriptors and %d HTTP servers is %d", (open, servers, limit) => {
  expect(requiredDescriptorLimit(open, servers)).toBe(limit);
});

test("descriptorRoomProblem counts the admin and metrics caps", () => {
  const settings = settingsOf(["127.0.0.1:7443"], 1, "unix:/run/tinylb/admin.sock", "127.0.0.1:9180");

  // 8 open, a copy of stderr, a listener and its lock, 3 for the admin API, 1 for metrics: 15 at start.
  expect(descriptorRoomProblem(settings, false, 32, 8)).toBe(
    "the balancer needs at least 33 file descriptors to hold 8 admin API and metrics server connections and serve one connection, but the descriptor limit is 32; raise ulimit -n (LimitNOFILE= under systemd)",
  );
  expect(descriptorRoomProblem(settings, false, 33, 8)).toBeUndefined();
  expect(descriptorRoomProblem(settingsOf(["127.0.0.1:7443"], 1, "127.0.0.1:9901"), false, 16, 8)).toContain("to hold 4 admin API connections and serve one connection");
});

test("descriptorRoomProblem names the workers and the fix", () => {
  const settings = settingsOf(["127.0.0.1:7443"], 8);

  expect(descriptorRoomProblem(settings, false, 32, 10)).toBe(
    "--workers 8 needs at least 51 file descriptors to start its threads and serve one connection, but the descriptor limit is 32; raise ulimit -n (LimitNOFILE= under systemd) or lower --workers",
  );
  expect(descriptorRoomProblem(settings, false, 32, 10, "/etc/tinylb/tinylb.yaml")).toBe(
    "workers: 8 (in /etc/tinylb/tinylb.yaml) needs at least 51 file descriptors to start its threads and serve one connection, but the descriptor limit is 32; raise ulimit -n (LimitNOFILE= under systemd) or lower workers",
  );
  expect(descriptorRoomProblem(settings, false, 50, 10)).toContain("needs at least 51");
  expect(descriptorRoomProblem(settings, false, 51, 10)).toBeUndefined();
});

test("descriptorRoomProblem needs room for a connection", () => {
  const settings = settingsOf(["127.0.0.1:7443"], 1);

  expect(descriptorRoomProblem(settings, false, 16, 8)).toBe(
    "the balancer needs at least 21 file descriptors to serve one connection, but the descriptor limit is 16; raise ulimit -n (LimitNOFILE= under systemd)",
  );
  expect(descriptorRoomProblem(settings, false, 21, 8)).toBeUndefined();
});

test.each([
  ["no probe", {}, 0],
  ["a tcp probe of every backend", { probe: { kind: "tcp" } }, 50],
  ["a probe of one backend", { probeOverrides: new Map([["a7", { kind: "http" }]]) }, 1],
] as const)("probeDescriptors with %s", (_case, check, expected) => {
  expect(probeDescriptors(probedSettingsOf(50, check as HealthCheckSettings))).toBe(expected);
});

test("descriptorRoomProblem counts a socket per probed backend", () => {
  const settings = probedSettingsOf(50, { probe: { kind: "tcp" } });

  // 10 open, a copy of stderr, a listener and its lock, 50 probes, 2 for the connection and the reserve of 8.
  expect(descriptorRoomProblem(settings, false, 72, 10)).toBe(
    "the balancer needs at least 73 file descriptors to probe 50 backends and serve one connection, but the descriptor limit is 72; raise ulimit -n (LimitNOFILE= under systemd)",
  );
  expect(descriptorRoomProblem(settings, false, 73, 10)).toBeUndefined();
});

test("descriptorRoomProblem skips an unknown limit", () => {
  expect(descriptorRoomProblem(settingsOf(["127.0.0.1:7443"], 256), false, undefined, 10)).toBeUndefined();
  expect(descriptorRoomProblem(settingsOf(["127.0.0.1:7443"], 256), false, 64, undefined)).toBeUndefined();
});

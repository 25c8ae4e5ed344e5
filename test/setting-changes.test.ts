import { expect, test } from "bun:test";
import type { ProbeOverrides } from "../src/probes/probe.ts";
import { backendProbeChanges, describeChange, probeChanges } from "../src/setting-changes.ts";

test.each<[string, ProbeOverrides | undefined, ProbeOverrides | undefined, string[]]>([
  ["fall lowered", { kind: "https", fall: 3 }, { kind: "https", fall: 2 }, ["probe.fall=3->2"]],
  ["interval set", { kind: "https" }, { kind: "https", intervalMs: 1000 }, ["probe.interval=5s->1s"]],
  ["two keys", { kind: "https", fall: 3, intervalMs: 2000 }, { kind: "https", fall: 2, intervalMs: 1000 }, ["probe.interval=2s->1s", "probe.fall=3->2"]],
  ["probe turned on", undefined, { kind: "tcp" }, ["probe.kind=off->tcp"]],
  ["probe turned off", { kind: "http", path: "/readyz" }, undefined, ["probe.kind=http->off", "probe.path=/readyz->/"]],
  ["ca path set", { kind: "https" }, { kind: "https", tls: { caFile: "/etc/ca.pem" } }, ["probe.tls.ca=none->/etc/ca.pem"]],
  ["expected statuses", { kind: "http" }, { kind: "http", expectStatus: [200, 204] }, ["probe.expectStatus=200->200,204"]],
  ["token file path", { kind: "http" }, { kind: "http", bearerTokenFile: "/run/token" }, ["probe.bearerTokenFile=none->/run/token"]],
  ["nothing changed", { kind: "tcp", fall: 2 }, { kind: "tcp", fall: 2 }, []],
  ["default written out", { kind: "tcp" }, { kind: "tcp", fall: 3 }, []],
])("probeChanges: %s", (_, before, after, expected) => {
  expect(probeChanges(before, after)).toEqual(expected);
});

test("backendProbeChanges names unset keys", () => {
  expect(backendProbeChanges("api-1", undefined, { fall: 1 })).toEqual(["probe.fall of api-1=unset->1"]);
  expect(backendProbeChanges("api-1", { fall: 1, kind: "http" }, { kind: "tcp" })).toEqual(["probe.kind of api-1=http->tcp", "probe.fall of api-1=1->unset"]);
});

test("describeChange quotes values with spaces", () => {
  expect(describeChange("probe.tls.ca", null, "/etc/my ca.pem")).toBe('probe.tls.ca=none->"/etc/my ca.pem"');
  expect(describeChange("probe.path", "/", "/a->b")).toBe('probe.path=/->"/a->b"');
});

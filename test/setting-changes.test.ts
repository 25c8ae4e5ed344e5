import { expect, test } from "bun:test";
import type { ProbeOverrides } from "../src/probes/probe.ts";
import { backendProbeChanges, describeChange, probeChanges } from "../src/setting-changes.ts";

test.each<[string, ProbeOverrides | undefined, ProbeOverrides | undefined, string[]]>([
  ["fall lowered", { kind: "https", fall: 3 }, { kind: "https", fall: 2 }, ["probe.fall=3->2"]],
  ["interval set", { kind: "https" }, { kind: "https", intervalMs: 1000 }, ["probe.interval=5s->1s", "probe.timeout=2s->1s (follows probe.interval)"]],
  ["interval raised", { kind: "tcp", intervalMs: 500 }, { kind: "tcp", intervalMs: 3000 }, ["probe.interval=500ms->3s", "probe.timeout=500ms->2s (follows probe.interval)"]],
  ["interval above default timeout", { kind: "tcp", intervalMs: 3000 }, { kind: "tcp", intervalMs: 4000 }, ["probe.interval=3s->4s"]],
  ["interval with set timeout", { kind: "tcp", timeoutMs: 500 }, { kind: "tcp", intervalMs: 1000, timeoutMs: 500 }, ["probe.interval=5s->1s"]],
  ["timeout unset, interval kept", { kind: "tcp", intervalMs: 1000, timeoutMs: 500 }, { kind: "tcp", intervalMs: 1000 }, ["probe.timeout=500ms->1s"]],
  ["timeout unset to same value", { kind: "tcp", timeoutMs: 1000 }, { kind: "tcp", intervalMs: 1000 }, ["probe.interval=5s->1s"]],
  ["timeout unset, interval cut", { kind: "tcp", timeoutMs: 1500 }, { kind: "tcp", intervalMs: 1000 }, ["probe.interval=5s->1s", "probe.timeout=1500ms->1s (follows probe.interval)"]],
  ["two keys", { kind: "https", fall: 3, intervalMs: 2000 }, { kind: "https", fall: 2, intervalMs: 1000 }, ["probe.interval=2s->1s", "probe.timeout=2s->1s (follows probe.interval)", "probe.fall=3->2"]],
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

const noSharedProbe = { before: undefined, after: undefined };

test("backendProbeChanges names unset keys", () => {
  expect(backendProbeChanges("api-1", undefined, { fall: 1 }, noSharedProbe)).toEqual(["probe.fall of api-1=unset->1"]);
  expect(backendProbeChanges("api-1", { fall: 1, kind: "http" }, { kind: "tcp" }, noSharedProbe)).toEqual(["probe.kind of api-1=http->tcp", "probe.fall of api-1=1->unset"]);
});

test.each<[string, ProbeOverrides | undefined, ProbeOverrides | undefined, { before: ProbeOverrides | undefined; after: ProbeOverrides | undefined }, string[]]>([
  ["own interval set", undefined, { intervalMs: 1000 }, noSharedProbe, ["probe.interval of api-1=unset->1s", "probe.timeout of api-1=2s->1s (follows probe.interval of api-1)"]],
  ["own interval dropped", { intervalMs: 500 }, undefined, { before: { kind: "tcp", intervalMs: 1000 }, after: { kind: "tcp", intervalMs: 1000 } }, ["probe.interval of api-1=500ms->unset", "probe.timeout of api-1=500ms->1s (follows probe.interval of api-1)"]],
  ["own timeout dropped", { intervalMs: 1000, timeoutMs: 300 }, { intervalMs: 500 }, noSharedProbe, ["probe.interval of api-1=1s->500ms", "probe.timeout of api-1=300ms->500ms (follows probe.interval of api-1)"]],
  ["shared timeout set", undefined, { intervalMs: 1000 }, { before: { kind: "tcp", timeoutMs: 800 }, after: { kind: "tcp", timeoutMs: 800 } }, ["probe.interval of api-1=unset->1s"]],
  ["own timeout set", { intervalMs: 5000 }, { intervalMs: 1000, timeoutMs: 300 }, noSharedProbe, ["probe.interval of api-1=5s->1s", "probe.timeout of api-1=unset->300ms"]],
  ["only shared interval changed", undefined, undefined, { before: { kind: "tcp" }, after: { kind: "tcp", intervalMs: 1000 } }, []],
])("backendProbeChanges: %s", (_, before, after, shared, expected) => {
  expect(backendProbeChanges("api-1", before, after, shared)).toEqual(expected);
});

test("describeChange quotes values with spaces", () => {
  expect(describeChange("probe.tls.ca", null, "/etc/my ca.pem")).toBe('probe.tls.ca=none->"/etc/my ca.pem"');
  expect(describeChange("probe.path", "/", "/a->b")).toBe('probe.path=/->"/a->b"');
});

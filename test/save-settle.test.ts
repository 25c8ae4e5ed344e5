import { expect, test } from "bun:test";
import { settingKeyPaths } from "../src/config.ts";
import { droppedSettings } from "../src/providers/save-settle.ts";

const whole = `listen: 127.0.0.1:0
backends:
  - { id: a, target: "127.0.0.1:1" }
  - { id: b, target: "127.0.0.1:2", probe: { kind: tls, tls: { ca: ca.pem } } }
logLevel: info
probe:
  kind: tcp
  interval: 2s
  fall: 30
`;

test.each([
  ["a whole file", whole, []],
  ["a cut inside the last block", whole.slice(0, whole.indexOf("  interval")), ["probe.interval", "probe.fall"]],
  ["a cut before a top-level key", whole.slice(0, whole.indexOf("\nprobe:") + 1), ["probe"]],
  ["a cut inside a list item's block", whole.replace(", tls: { ca: ca.pem }", ""), ["backends[b].probe.tls"]],
  ["a reordered list", whole.replace(/( {2}- \{ id: a.*\n)( {2}- \{ id: b.*\n)/, "$2$1"), []],
  ["a cut inside a value", whole.replace("fall: 30", "fall: 3"), []],
])("droppedSettings of %s", (_name, after, expected) => {
  const before = settingKeyPaths("tinylb.yaml", whole);

  expect(droppedSettings(before, settingKeyPaths("tinylb.yaml", after))).toEqual(expected);
});

test("settingKeyPaths walks mappings and lists", () => {
  const paths = settingKeyPaths("tinylb.yaml", whole);

  expect(paths).toContain("backends[b].probe.tls.ca");
  expect(paths).toContain("probe.fall");
  expect(paths).not.toContain("backends.1");
  expect(settingKeyPaths("tinylb.yaml", "listen: [127.0.0.1:1, 127.0.0.1:2]\n")).toEqual(["listen", "listen.0", "listen.1"]);
});

test("settingKeyPaths of a non-mapping is empty", () => {
  expect(settingKeyPaths("tinylb.yaml", "- a\n- b\n")).toEqual([]);
  expect(settingKeyPaths("tinylb.yaml", "a: [\n")).toEqual([]);
});

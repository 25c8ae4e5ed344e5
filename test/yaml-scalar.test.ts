import { expect, test } from "bun:test";
import { yamlScalar } from "../src/yaml-scalar.ts";

test.each([
  ["127.0.0.1:7443", "127.0.0.1:7443"],
  ["api-1", "api-1"],
  ["off", "off"],
  ["/etc/tinylb/ca.pem", "/etc/tinylb/ca.pem"],
  ["[::1]:9100", '"[::1]:9100"'],
  ["7", '"7"'],
  ["0x10", '"0x10"'],
  ["true", '"true"'],
  ["#hash", '"#hash"'],
  ["a: b", '"a: b"'],
  ["a,b", '"a,b"'],
  [" padded", '" padded"'],
  ["", '""'],
])("yamlScalar writes %p as %p", (text, written) => {
  expect(yamlScalar(text)).toBe(written);
  expect(Bun.YAML.parse(`value: ${written}`)).toEqual({ value: text });
  expect(Bun.YAML.parse(`list: [${written}]`)).toEqual({ list: [text] });
});

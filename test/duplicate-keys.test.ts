import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { findDuplicateJsonKey } from "../src/duplicate-keys.ts";
import { findDuplicateYamlKey } from "../src/yaml-duplicate-keys.ts";
import { DOC_PAGES } from "./support/doc-pages.ts";

const ROOT = join(import.meta.dir, "..");

test.each([
  ["a flow mapping", "backends:\n  - { id: a, target: 127.0.0.1:18001, target: 127.0.0.1:18002 }\n", { key: "target", line: 2, firstLine: 2 }],
  ["top-level keys", "listen: 127.0.0.1:1\nadmin: off\nlisten: 127.0.0.1:2\n", { key: "listen", line: 3, firstLine: 1 }],
  ["a nested block mapping", "probe:\n  kind: http\n  path: /a\n  kind: tcp\n", { key: "kind", line: 4, firstLine: 2 }],
  ["a sequence item", "backends:\n  - id: a\n    target: x:1\n    id: b\n", { key: "id", line: 4, firstLine: 2 }],
  ["a dash at the parent's column", "backends:\n- id: a\n  id: b\n", { key: "id", line: 3, firstLine: 2 }],
  ["a quoted and a plain key", "a: 1\n'a': 2\n", { key: "a", line: 2, firstLine: 1 }],
  ["a double-quoted key", '"listen": x\nlisten: y\n', { key: "listen", line: 2, firstLine: 1 }],
  ["a flow mapping over lines", "dns: {\n  names: [a:1],\n  # comment\n  names: [b:2]\n}\n", { key: "names", line: 4, firstLine: 2 }],
  ["a nested flow mapping", "probe: { tls: { ca: a, ca: b } }\n", { key: "ca", line: 1, firstLine: 1 }],
  ["keys after a block scalar", "a: |\n  text\n  a: not a key\nb: 1\nb: 2\n", { key: "b", line: 5, firstLine: 4 }],
  ["Windows line ends", "a: 1\r\nb: 2\r\na: 3\r\n", { key: "a", line: 3, firstLine: 1 }],
])("YAML duplicate in %s", (_, text, expected) => {
  expect(Bun.YAML.parse(text)).toBeDefined();
  expect(findDuplicateYamlKey(text)).toEqual(expected);
});

test.each([
  ["sibling sequence items", "backends:\n  - id: a\n    target: x:1\n  - id: b\n    target: x:2\n"],
  ["sibling mappings", "probe:\n  kind: http\nbackends:\n  - probe:\n      kind: tcp\n"],
  ["flow items", "backends:\n  - { id: a, target: x:1 }\n  - { id: b, target: x:2 }\n"],
  ["a block scalar", "a: |\n  b: 1\n  b: 2\nc: 1\n"],
  ["a folded scalar after a dash", "- >-\n  b: 1\n  b: 2\n- c\n"],
  ["a quoted value over lines", 'k: "multi\n  a: 1\n  a: 2"\na: 3\n'],
  ["colons in values", "listen: 127.0.0.1:1\nurl: http://a:b@c/\n"],
  ["a comment with a key", "a: 1 # a: 2\n# a: 3\n"],
  ["merge keys", "base: &base\n  c: 1\nd:\n  <<: *base\n  c: 2\ne:\n  <<: *base\n  <<: *base\n"],
  ["a flow sequence of pairs", "a: [b: 1, b: 2]\n"],
  ["a plain scalar with a colon in flow", "a: {b:1, b:2}\n"],
  ["a key in a value string", "a: 'a: 1'\nb: \"a: 2\"\n"],
  ["separate documents", "a: 1\n---\na: 2\n"],
])("YAML without duplicates: %s", (_, text) => {
  expect(findDuplicateYamlKey(text)).toBeUndefined();
});

test.each([
  ["top-level keys", '{"listen": "127.0.0.1:1", "admin": "off", "listen": "127.0.0.1:2"}', { key: "listen", line: 1, firstLine: 1 }],
  ["a nested object over lines", '{\n  "backends": [\n    { "id": "a",\n      "id": "b" }\n  ]\n}', { key: "id", line: 4, firstLine: 3 }],
  ["an escaped key", '{"\\u0061": 1, "a": 2}', { key: "a", line: 1, firstLine: 1 }],
  ["a single-quoted key", "{'a': 1, \"a\": 2}", { key: "a", line: 1, firstLine: 1 }],
  ["keys after comments", '{\n  // "a": 0,\n  "a": 1, /* "a": 2,\n */ "b": 3, "a": 4,\n}', { key: "a", line: 4, firstLine: 3 }],
])("JSON duplicate in %s", (_, text, expected) => {
  expect(Bun.JSONC.parse(text)).toBeDefined();
  expect(findDuplicateJsonKey(text)).toEqual(expected);
});

test.each([
  ["sibling objects", '[{"id": "a"}, {"id": "b"}]'],
  ["keys as values", '{"a": "a", "b": ["a", "a"], "c": {"a": 1}}'],
  ["a trailing comma", '{"a": 1, "b": [1, 2,],}'],
  ["quotes and braces in strings", '{"a": "}\\"{", "b": "\'a\': 1"}'],
])("JSON without duplicates: %s", (_, text) => {
  expect(findDuplicateJsonKey(text)).toBeUndefined();
});

test("shipped YAML and JSON files have no false duplicates", () => {
  const files = ["examples/tinylb-apiservers.yaml", "examples/kubernetes/tinylb-static-pod.yaml", "package.json", "tsconfig.json"];
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const find = file.endsWith(".json") ? findDuplicateJsonKey : findDuplicateYamlKey;
    expect({ file, duplicate: find(text) }).toEqual({ file, duplicate: undefined });
  }

  // Every YAML block of the README and the docs, as a user would paste it.
  for (const file of DOC_PAGES) {
    const markdown = readFileSync(join(ROOT, file), "utf8");
    for (const block of markdown.matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
      expect({ file, block: block[1], duplicate: findDuplicateYamlKey(block[1]!) }).toEqual({ file, block: block[1], duplicate: undefined });
    }
  }
});

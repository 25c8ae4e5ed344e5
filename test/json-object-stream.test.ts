import { expect, test } from "bun:test";
import { JsonObjectSplitter, JsonStreamError, readJsonObjects } from "../src/providers/json-object-stream.ts";

/** Feeds `chunks` to a splitter and returns every object it produced. */
function split(chunks: string[], maxObjectChars?: number): unknown[] {
  const splitter = new JsonObjectSplitter(maxObjectChars);
  const objects = chunks.flatMap((chunk) => splitter.push(chunk));
  splitter.finish();

  return objects;
}

test.each([
  ["newline-separated", ['{"a":1}\n{"b":2}\n'], [{ a: 1 }, { b: 2 }]],
  ["concatenated", ['{"a":1}{"b":2}'], [{ a: 1 }, { b: 2 }]],
  ["split inside a string", ['{"a":"x', 'y"}'], [{ a: "xy" }]],
  ["braces inside strings", ['{"a":"}{"}', '{"b":"\\"}"}'], [{ a: "}{" }, { b: '"}' }]],
  ["escaped backslash before a quote", ['{"a":"\\\\"}{"b":1}'], [{ a: "\\" }, { b: 1 }]],
  ["nested objects and arrays", ['{"a":{"b":[{"c":1}]}}'], [{ a: { b: [{ c: 1 }] } }]],
  ["one character per chunk", [...'{"a":[1,2]}\n'], [{ a: [1, 2] }]],
  ["blank lines around objects", ["\n\n  {}\r\n\n"], [{}]],
  ["nothing", [""], []],
])("JsonObjectSplitter handles %s", (_case, chunks, expected) => {
  expect(split(chunks)).toEqual(expected);
});

test.each([
  ["text between objects", ['{"a":1} x {"b":2}'], 'unexpected "x" between JSON objects'],
  ["an array at the top level", ["[1]"], 'unexpected "[" between JSON objects'],
  ["an invalid object", ['{"a":}'], "invalid JSON object in stream"],
  ["a stream that ends inside an object", ['{"a":'], "stream ended inside a JSON object"],
])("JsonObjectSplitter rejects %s", (_case, chunks, message) => {
  expect(() => split(chunks)).toThrow(JsonStreamError);
  expect(() => split(chunks)).toThrow(message);
});

test("JsonObjectSplitter limits the object size", () => {
  expect(() => split(['{"a":"' + "x".repeat(100)], 50)).toThrow("longer than the limit of 50 characters (106 read)");
});

test("readJsonObjects decodes UTF-8 split across chunks", async () => {
  const bytes = new TextEncoder().encode('{"name":"Zürich"}\n{"n":2}');
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // The two bytes of "ü" land in different chunks.
      const cut = bytes.indexOf(0xc3) + 1;
      controller.enqueue(bytes.subarray(0, cut));
      controller.enqueue(bytes.subarray(cut));
      controller.close();
    },
  });

  const objects: unknown[] = [];
  for await (const object of readJsonObjects(body)) {
    objects.push(object);
  }

  expect(objects).toEqual([{ name: "Zürich" }, { n: 2 }]);
});

test("JsonObjectSplitter limits an object that arrives whole", () => {
  expect(() => split(['{"a":"' + "x".repeat(100) + '"}\n{}'], 50)).toThrow("longer than the limit of 50 characters (108 read)");
});

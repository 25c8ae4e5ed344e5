/**
 * Reading of streamed JSON: a response body that carries one JSON object after another,
 * as the Kubernetes watch API and the etcd JSON gateway's watch send them.
 *
 * Objects may be separated by newlines or by nothing at all, and may arrive split over
 * any number of chunks. The splitter tracks string and nesting state itself, so it never
 * depends on the framing a server happens to use.
 */

import { describeBodyReadError } from "./response-body.ts";

/** Default maximum length of one object, in UTF-16 characters: far above any EndpointSlice or etcd event batch. */
export const MAX_OBJECT_CHARS = 16 * 1024 * 1024;

/** A stream that does not contain a sequence of JSON objects. */
export class JsonStreamError extends Error {
  override name = "JsonStreamError";
}

/**
 * Yields each top-level JSON object of `body` as it completes.
 *
 * @param source when given, names the stream in front of each JsonStreamError message,
 *   such as `etcd /v3/watch at http://10.0.0.1:2379`.
 * @throws {JsonStreamError} when the text between objects is not whitespace, an object
 *   does not parse, an object grows past `maxObjectChars`, or the stream ends inside one.
 */
export async function* readJsonObjects(
  body: ReadableStream<Uint8Array>,
  maxObjectChars = MAX_OBJECT_CHARS,
  source?: string,
): AsyncGenerator<unknown, void, undefined> {
  const splitter = new JsonObjectSplitter(maxObjectChars);
  const decoder = new TextDecoder();
  try {
    for await (const chunk of body) {
      yield* splitter.push(decoder.decode(chunk, { stream: true }));
    }
    yield* splitter.push(decoder.decode());
    splitter.finish();
  } catch (error) {
    if (source !== undefined && error instanceof JsonStreamError) {
      throw new JsonStreamError(`${source} failed: ${error.message}`, { cause: error });
    }
    throw source === undefined ? error : describeBodyReadError(error, source);
  }
}

/** Incremental splitter of concatenated JSON objects: `push` takes text and returns the parsed objects it completes. */
export class JsonObjectSplitter {
  #buffer = "";
  /** Index in `#buffer` up to which the text has been scanned. */
  #scanned = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;

  constructor(private readonly maxObjectChars = MAX_OBJECT_CHARS) {}

  /**
   * Adds text and returns every object that it completes.
   *
   * @throws {JsonStreamError} as described for `readJsonObjects`.
   */
  push(text: string): unknown[] {
    this.#buffer += text;
    const objects: unknown[] = [];

    while (this.#scanned < this.#buffer.length) {
      const char = this.#buffer[this.#scanned]!;
      this.#scanned++;

      if (this.#depth === 0) {
        this.#expectObjectStart(char);
        continue;
      }
      if (this.#inString) {
        this.#scanString(char);
        continue;
      }
      if (char === '"') {
        this.#inString = true;
      } else if (char === "{" || char === "[") {
        this.#depth++;
      } else if (char === "}" || char === "]") {
        this.#depth--;
        if (this.#depth === 0) {
          objects.push(this.#takeObject());
        }
      }
    }

    this.#checkLength(this.#buffer.length);

    return objects;
  }

  /**
   * Checks that the stream did not end inside an object.
   *
   * @throws {JsonStreamError} when it did.
   */
  finish(): void {
    if (this.#depth > 0) {
      throw new JsonStreamError(`stream ended inside a JSON object after ${this.#buffer.length} characters`);
    }
  }

  #expectObjectStart(char: string): void {
    if (char === "{") {
      this.#depth = 1;
      // Drop the whitespace before the object, so the buffer starts at its brace.
      this.#buffer = this.#buffer.slice(this.#scanned - 1);
      this.#scanned = 1;

      return;
    }
    if (!/\s/.test(char)) {
      throw new JsonStreamError(`unexpected ${JSON.stringify(char)} between JSON objects in stream`);
    }
  }

  #scanString(char: string): void {
    if (this.#escaped) {
      this.#escaped = false;
    } else if (char === "\\") {
      this.#escaped = true;
    } else if (char === '"') {
      this.#inString = false;
    }
  }

  /** Rejects an object that has grown to `length` characters, past the limit. */
  #checkLength(length: number): void {
    if (length > this.maxObjectChars) {
      throw new JsonStreamError(`JSON object in stream is longer than the limit of ${this.maxObjectChars} characters (${length} read)`);
    }
  }

  #takeObject(): unknown {
    // An object that arrived whole in one chunk is checked here, as it never stays in the buffer.
    this.#checkLength(this.#scanned);
    const text = this.#buffer.slice(0, this.#scanned);
    this.#buffer = this.#buffer.slice(this.#scanned);
    this.#scanned = 0;
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new JsonStreamError(`invalid JSON object in stream: ${(error as Error).message}`, { cause: error });
    }
  }
}

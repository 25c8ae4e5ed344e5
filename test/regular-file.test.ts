import { expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeFileError } from "../src/file-errors.ts";
import { readRegularFile } from "../src/regular-file.ts";
import { mkfifo } from "./support/fifo.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { within } from "./support/wait.ts";

const directory = tempDirectory("tinylb-regular-file-");
const REGULAR_FILE_MODULE = join(import.meta.dir, "..", "src", "regular-file.ts");

/** Returns the message `readRegularFile` throws for `path`, worded as the callers word it. */
function readError(path: string, maxBytes = 1024): string {
  try {
    readRegularFile(path, maxBytes);
  } catch (error) {
    return describeFileError(error);
  }
  throw new Error(`expected reading ${path} to fail`);
}

/**
 * Reads `path` in a child process and returns what it printed: the error, or the byte count.
 * A read that blocks (on a FIFO) or never ends (on /dev/zero) then fails the test by the
 * deadline rather than hanging the test runner.
 */
async function readInChild(path: string): Promise<string> {
  const script = `
    import { readRegularFile } from ${JSON.stringify(REGULAR_FILE_MODULE)};
    import { describeFileError } from ${JSON.stringify(join(import.meta.dir, "..", "src", "file-errors.ts"))};
    try { console.log(readRegularFile(${JSON.stringify(path)}, 1024).byteLength); } catch (error) { console.log(describeFileError(error)); }`;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
  try {
    const output = await within(`a read of ${path} in a child process`, new Response(child.stdout).text(), 10_000);

    return output.trim();
  } finally {
    child.kill("SIGKILL");
  }
}

test("readRegularFile reads a file and a symlink to it", () => {
  const path = join(directory, "token");
  writeFileSync(path, "s3cret\n");
  symlinkSync(path, join(directory, "token-link"));

  expect(readRegularFile(path, 1024).toString()).toBe("s3cret\n");
  expect(readRegularFile(join(directory, "token-link"), 1024).toString()).toBe("s3cret\n");
});

test.each([
  ["an empty file", 0],
  ["a file of exactly the limit", 1024],
])("readRegularFile reads %s", (_name, size) => {
  const path = join(directory, `size-${size}`);
  writeFileSync(path, "x".repeat(size));

  expect(readRegularFile(path, 1024).byteLength).toBe(size);
});

test("readRegularFile rejects a file over the limit", () => {
  const path = join(directory, "large");
  writeFileSync(path, "x".repeat(1025));

  expect(readError(path)).toBe("the file has 1025 bytes, more than the 1024 allowed");
});

test("readRegularFile stops at the limit when the size is unknown", () => {
  // Files in /proc report a size of 0, like a file that grows after the size check.
  expect(readError("/proc/self/status", 100)).toBe("the file has more than the 100 bytes allowed");
});

test("readRegularFile keeps the errno of a missing file", () => {
  expect(readError(join(directory, "absent"))).toBe("the file does not exist");
});

test("readRegularFile rejects a folder", () => {
  const path = join(directory, "folder");
  mkdirSync(path);

  expect(readError(path)).toBe("it is a folder, not a file");
});

test("readRegularFile rejects a socket", () => {
  const path = join(directory, "listening.sock");
  const listener = Bun.listen({ unix: path, socket: { data() {} } });
  try {
    expect(readError(path)).toBe("it is a socket, not a regular file; name a regular file or a symlink to one");
  } finally {
    listener.stop(true);
  }
});

test("readRegularFile rejects /dev/null", () => {
  expect(readError("/dev/null")).toBe("it is a character device, not a regular file; name a regular file or a symlink to one");
});

test("readRegularFile rejects a FIFO without blocking", async () => {
  const path = join(directory, "fifo");
  mkfifo(path);

  expect(await readInChild(path)).toBe("it is a FIFO (named pipe), not a regular file; name a regular file or a symlink to one");
});

test("readRegularFile rejects a symlink to /dev/zero", async () => {
  const path = join(directory, "zero");
  symlinkSync("/dev/zero", path);

  expect(await readInChild(path)).toBe("it is a character device, not a regular file; name a regular file or a symlink to one");
});

import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { socketFolderErrorCode, socketPathLengthProblem, socketPathProblem, unixListenErrorHint } from "../src/socket-path.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-socket-path-");
const file = join(directory, "regular.file");
writeFileSync(file, "");
mkdirSync(join(directory, "folder"));

describe("socketPathProblem", () => {
  test.each([
    ["/run/tinylb.sock", undefined],
    ["tinylb.sock", 'the socket path "tinylb.sock" is relative, so it would depend on tinylb\'s working folder; use an absolute path, as in unix:/run/app.sock'],
    ["./run/tinylb.sock", 'the socket path "./run/tinylb.sock" is relative'],
    [`/tmp/${"a".repeat(97)}.sock`, undefined],
    [`/tmp/${"a".repeat(98)}.sock`, "the path has 108 bytes, more than the 107 a Unix socket path can have; use a shorter path"],
    // Linux counts bytes, so a path of 54 characters can be too long in UTF-8.
    [`/tmp/${"é".repeat(49)}.sock`, "the path has 108 bytes, more than the 107 a Unix socket path can have; use a shorter path"],
  ])("of %p", (path, problem) => {
    if (problem === undefined) {
      expect(socketPathProblem(path)).toBeUndefined();
    } else {
      expect(socketPathProblem(path)).toStartWith(problem);
    }
  });
});

describe("socketPathLengthProblem", () => {
  test("accepts a relative path that fits", () => {
    expect(socketPathLengthProblem("admin.sock")).toBeUndefined();
  });

  test("accepts a path of 107 bytes", () => {
    expect(socketPathLengthProblem(`/tmp/${"a".repeat(97)}.sock`)).toBeUndefined();
  });

  test("rejects a path of 108 bytes", () => {
    expect(socketPathLengthProblem(`/tmp/${"a".repeat(98)}.sock`)).toBe("the path has 108 bytes, more than the 107 a Unix socket path can have; use a shorter path");
  });
});

describe("socketFolderErrorCode", () => {
  test.each([
    ["an existing folder", () => join(directory, "folder", "x.sock"), undefined],
    ["a missing folder", () => join(directory, "missing", "x.sock"), "ENOENT"],
    ["a file as the folder", () => join(file, "x.sock"), "ENOTDIR"],
    ["a file above the folder", () => join(file, "below", "x.sock"), "ENOTDIR"],
  ])("finds %s", (_, path, code) => {
    expect(socketFolderErrorCode(path())).toBe(code);
  });
});

describe("unixListenErrorHint", () => {
  test.each([
    ["ENOENT in a missing folder", "ENOENT", () => join(directory, "missing", "x.sock"), `the folder ${join(directory, "missing")} does not exist; create it or pick another path`],
    ["ENOENT in /proc", "ENOENT", () => "/proc/x.sock", "the folder /proc exists, but its file system does not allow creating a socket in it, as with /proc; pick a folder on a regular file system"],
    ["ENOTDIR under a file", "ENOTDIR", () => join(file, "x.sock"), `${file} is a file, not a folder; pick another path`],
    ["ENOTDIR deeper under a file", "ENOTDIR", () => join(file, "a", "b", "x.sock"), `${file} is a file, not a folder; pick another path`],
    ["ENOTDIR without a file", "ENOTDIR", () => join(directory, "folder", "x.sock"), `a part of the folder ${join(directory, "folder")} is not a folder; pick another path`],
    ["EPERM", "EPERM", () => "/sys/x.sock", "creating a socket in /sys is not permitted, as on /sys or in an immutable folder; pick a folder on a regular file system"],
    ["EROFS", "EROFS", () => "/mnt/ro/x.sock", "/mnt/ro is on a read-only file system; pick a writable folder, such as /run/tinylb"],
    ["EACCES", "EACCES", () => "/root/x.sock", "permission denied: this user cannot create a socket in /root"],
  ])("describes %s", (_, code, path, hint) => {
    expect(unixListenErrorHint(code, path())).toStartWith(hint);
  });

  test("leaves other codes to the caller", () => {
    expect(unixListenErrorHint("EADDRINUSE", "/run/x.sock")).toBeUndefined();
  });
});

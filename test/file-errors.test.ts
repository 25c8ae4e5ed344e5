import { expect, test } from "bun:test";
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describeFileError, describeKeyFileReadError } from "../src/file-errors.ts";
import { tempDirectory } from "./support/temp-directory.ts";

/** Returns the error that `action` throws. */
function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected the file operation to fail");
}

const dir = tempDirectory("tinylb-file-errors-");

test.each([
  ["a missing file read", () => readFileSync(join(dir, "absent")), "read", undefined, "the file does not exist"],
  ["a folder read", () => readFileSync(dir), "read", undefined, "it is a folder, not a file"],
  ["a path through a file", () => readFileSync("/etc/passwd/x"), "read", undefined, "a part of the path is not a folder"],
  ["a write into a missing folder", () => openSync(join(dir, "gone", "state.json.1.tmp"), "w"), "write", join(dir, "gone", "state.json"), `the folder ${join(dir, "gone")} does not exist; create it or pick another path`],
] as const)("describeFileError words %s", (_, action, access, path, message) => {
  expect(describeFileError(thrown(action), access, path)).toBe(message);
});

test("describeFileError keeps other messages", () => {
  expect(describeFileError(new Error("disk on fire"))).toBe("disk on fire");
});

test("describeKeyFileReadError names the config key", () => {
  const path = join(dir, "absent-ca.pem");
  const error = thrown(() => readFileSync(path));

  expect(describeKeyFileReadError(error, { path, label: "etcd TLS file", key: "etcd.caFile", configPath: "/etc/tinylb/tinylb.yaml" })).toBe(
    `invalid config /etc/tinylb/tinylb.yaml: etcd.caFile: cannot read ${path}: the file does not exist`,
  );
});

test("describeKeyFileReadError without a config file", () => {
  const error = thrown(() => readFileSync(dir));

  expect(describeKeyFileReadError(error, { path: dir, label: "kubeconfig", key: "kubernetes.kubeconfig", configPath: undefined })).toBe(`read kubeconfig ${dir} failed: it is a folder, not a file`);
});

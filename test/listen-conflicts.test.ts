import { expect, test } from "bun:test";
import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { parseAddress } from "../src/address.ts";
import { findListenConflict } from "../src/listen-conflicts.ts";
import { tempDirectory } from "./support/temp-directory.ts";

/** Returns the conflict message for two `--listen` addresses, or undefined. */
function conflictOf(earlier: string, later: string): string | undefined {
  return findListenConflict([
    { setting: "--listen", address: parseAddress(earlier, true) },
    { setting: "--listen", address: parseAddress(later, true) },
  ]);
}

const REMEDY = "; an address can be bound only once, so remove one or change it";

test.each([
  ["127.0.0.1:7000", "127.0.0.1:7000", "--listen 127.0.0.1:7000 is given twice"],
  ["[::1]:7000", "[0:0::1]:7000", "--listen [0:0::1]:7000 is the same address as --listen [::1]:7000"],
  ["[::1]:7000", "[0:0:0:0:0:0:0:1]:7000", "--listen [0:0:0:0:0:0:0:1]:7000 is the same address as --listen [::1]:7000"],
  ["[FD00::1]:7000", "[fd00:0::1]:7000", "--listen [fd00:0::1]:7000 is the same address as --listen [FD00::1]:7000"],
  ["[::ffff:127.0.0.1]:7000", "127.0.0.1:7000", "--listen 127.0.0.1:7000 is the same address as --listen [::ffff:127.0.0.1]:7000"],
  ["localhost:7000", "127.0.0.1:7000", "--listen 127.0.0.1:7000 is the same address as --listen localhost:7000"],
  ["[0::]:7000", "127.0.0.1:7000", "--listen 127.0.0.1:7000 overlaps --listen [0::]:7000"],
  ["0.0.0.0:7000", "localhost:7000", "--listen localhost:7000 overlaps --listen 0.0.0.0:7000"],
])("listen %s and %s clash", (earlier, later, message) => {
  expect(conflictOf(earlier, later)).toBe(message + REMEDY);
});

test.each([
  ["[::1]:7000", "[::2]:7000"],
  ["[::1]:7000", "[::1]:7001"],
  ["[::1]:0", "[0:0::1]:0"],
  ["0.0.0.0:7000", "[::1]:7000"],
  ["[::ffff:127.0.0.1]:7000", "127.0.0.2:7000"],
])("listen %s and %s do not clash", (earlier, later) => {
  expect(conflictOf(earlier, later)).toBeUndefined();
});

test("listen paths of one socket clash", () => {
  const folder = tempDirectory("tinylb-listen-conflicts-");
  mkdirSync(join(folder, "run"));
  symlinkSync(join(folder, "run"), join(folder, "link"));
  const path = join(folder, "run", "lb.sock");

  expect(conflictOf(`unix:${path}`, `unix:${folder}/run//lb.sock`)).toBe(`--listen unix:${folder}/run//lb.sock is the same socket as --listen unix:${path}${REMEDY}`);
  expect(conflictOf(`unix:${path}`, `unix:${folder}/link/lb.sock`)).toBe(`--listen unix:${folder}/link/lb.sock is the same socket as --listen unix:${path}${REMEDY}`);
  expect(conflictOf(`unix:${path}`, `unix:${folder}/run/other.sock`)).toBeUndefined();
});

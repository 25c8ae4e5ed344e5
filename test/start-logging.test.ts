/**
 * Log lines of the compiled `dist/tinylb` at start-up and on backend set changes.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { VERSION } from "../src/version.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-start-log-");

test("binary logs its version at start", async () => {
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9"]);
  await tinylb.waitForLog("tinylb started");

  expect(tinylb.stderr).toMatch(new RegExp(`INFO  tinylb started component=main version=${VERSION.replaceAll(".", "\\.")} `));
});

test("start line names the PROXY protocol", async () => {
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--proxy-protocol", "v2"]);
  await tinylb.waitForLog("tinylb started");

  expect(tinylb.stderr).toMatch(/tinylb started .* proxyProtocol=v2 /);
});

test("binary warns at start without backends", async () => {
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0"]);
  await tinylb.waitForLog("tinylb started");

  await tinylb.waitForLog("WARN  no backends yet; clients are closed until a provider adds one");
});

test("binary brackets IPv6 client addresses", async () => {
  await using tinylb = TinylbProcess.start(["--listen", "[::1]:0", "--backend", "a=127.0.0.1:9", "--log-level", "debug"]);
  await tinylb.waitForLog("tinylb started");
  const port = Number(/listener=\[::1\]:(\d+)/.exec(tinylb.stderr)![1]);

  let closed = false;
  await Bun.connect({ hostname: "::1", port, socket: { data() {}, close: () => void (closed = true) } });
  await waitFor("the balancer to close the client", () => closed);
  await tinylb.waitForLog(/client=\[::1\]:\d+/);

  expect(tinylb.stderr).not.toMatch(/client=::1:/);
});

test("binary bounds the backend set change line", async () => {
  const config = join(directory, "many.yaml");
  const entries = (count: number, port: number): string =>
    Array.from({ length: count }, (_, index) => `  - { id: b${String(index).padStart(4, "0")}, target: "127.0.0.1:${port}" }`).join("\n");
  writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n${entries(1000, 9)}\n`);
  await using tinylb = TinylbProcess.start(["--config", config]);
  await tinylb.waitForLog("tinylb started");

  writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n${entries(999, 9)}\n  - { id: extra, target: "127.0.0.1:10" }\n`);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/backend set changed .*added="extra=127\.0\.0\.1:10"/);

  const changes = tinylb.stderr.split("\n").filter((line) => line.includes("backend set changed"));
  expect(changes).toHaveLength(2);
  expect(changes[0]).toContain("count=1000 ");
  expect(changes[0]).toContain(" and 936 more");
  expect(changes[1]).toContain('removed="b0999=127.0.0.1:9"');
  for (const line of changes) {
    expect(line.length).toBeLessThan(8000);
  }
});

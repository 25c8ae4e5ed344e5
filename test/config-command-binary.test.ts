/**
 * `tinylb config` through the compiled `dist/tinylb`, against a balancer started from the same
 * binary with a config file and flags.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigView } from "../src/config-view.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { runTinylb, TinylbProcess } from "./support/tinylb-process.ts";

const directory = tempDirectory("tinylb-config-binary-");

/** Returns the config file's lines, with a probe whose `fall` is `fall`. */
function configLines(fall: number): string[] {
  return [
    "listen: 127.0.0.1:0",
    "backends:",
    "  - { id: a, target: 127.0.0.1:9, slowStart: 30s }",
    `probe: { kind: tcp, interval: 1s, fall: ${fall} }`,
    "connectTimeout: 2s",
    "",
  ];
}

test("binary config prints the settings in effect", async () => {
  const config = join(directory, "tinylb.yaml");
  const admin = ["--admin", `unix:${join(directory, "admin.sock")}`];
  writeFileSync(config, configLines(3).join("\n"));
  await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config", "--keepalive", "10s", ...admin]);
  await tinylb.waitForLog("tinylb started");

  const table = await runTinylb(["config", ...admin]);
  expect(table.stderr).toBe("");
  expect(table.exitCode).toBe(0);
  const lines = table.stdout.split("\n");
  expect(lines[0]).toBe(`Config file: ${config}`);
  expect(lines).toContainEqual(expect.stringMatching(/^connectTimeout +2s +file$/));
  expect(lines).toContainEqual(expect.stringMatching(/^keepalive +10s +flag$/));
  expect(lines).toContainEqual(expect.stringMatching(/^shutdownGrace +10s +default$/));
  expect(lines).toContainEqual(expect.stringMatching(/^probe\.fall +3 +file$/));
  expect(lines).toContainEqual(expect.stringMatching(/^probe\.timeout +1s +default$/));
  expect(lines).toContainEqual(expect.stringMatching(/^watchConfig +false +flag$/));
  expect(lines).toContainEqual(expect.stringMatching(/^a +slowStart +30s$/));
  // A tcp probe sends no request, so the config file rejects these keys and the table leaves them out.
  expect(lines).not.toContainEqual(expect.stringMatching(/^probe\.(path|expectStatus) /));

  writeFileSync(config, configLines(2).join("\n"));
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("settings changed in the config file applied");
  expect(tinylb.stderr).toContain('applied="probe.fall=3->2"');

  const json = await runTinylb(["config", "--json", ...admin]);
  expect(json.exitCode).toBe(0);
  const view = JSON.parse(json.stdout) as ConfigView;
  expect(view.settings.find((entry) => entry.key === "probe.fall")).toEqual({ key: "probe.fall", value: 2, source: "file" });
  expect(view.settings.find((entry) => entry.key === "probe.interval")).toEqual({ key: "probe.interval", value: "1s", source: "file" });
  expect(view.settings.find((entry) => entry.key === "probe.path")).toBeUndefined();
  expect(view.pendingRestart).toEqual([]);
}, 30_000);

test("binary config rejects a status-only flag", async () => {
  const result = await runTinylb(["config", "--listen", "127.0.0.1:1"]);

  expect(result.stderr).toBe("tinylb: --listen is not valid with tinylb config; use --admin ADDR, --admin-token-file FILE or --json; see tinylb config --help\n");
  expect(result.exitCode).toBe(2);
});

test("binary config without a balancer exits 1", async () => {
  const socket = join(directory, "none.sock");
  const result = await runTinylb(["config", "--admin", `unix:${socket}`]);

  expect(result.stderr).toStartWith(`tinylb config: no balancer responds on unix:${socket}`);
  expect(result.exitCode).toBe(1);
});

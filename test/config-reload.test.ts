/**
 * Settings other than backends and probes in a config file re-read by the compiled binary.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { HangingTarget } from "./support/fault-peers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-reload-");

test("binary applies live settings on reload and names the rest", async () => {
  const hanging = await HangingTarget.start();
  const fast = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const config = join(directory, "tinylb.yaml");
    // Rotation order is by id: "a-fast" takes the first client, "slow" the second.
    const base = ["listen: 127.0.0.1:0", "backends:", `  - { id: a-fast, target: "127.0.0.1:${fast.port}" }`, `  - { id: slow, target: "${hanging.target}" }`];
    writeFileSync(config, [...base, "connectTimeout: 20s", "logLevel: info", ""].join("\n"));
    const admin = join(directory, "reload-admin.sock");
    await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config", "--admin", `unix:${admin}`]);
    await tinylb.waitForLog("tinylb started");
    const port = Number(/listening .*listener=127\.0\.0\.1:(\d+)/.exec(tinylb.stderr)![1]);

    writeFileSync(
      config,
      [
        ...base,
        "connectTimeout: 1s",
        "keepalive: 5s",
        "shutdownGrace: 2s",
        "logLevel: debug",
        "maxConnections: 10",
        "workers: 2",
        "onRemoval: drain",
        `adminTokenFile: ${join(directory, "token")}`,
        'dns: { names: ["api.example.test:6443"], interval: 10s }',
        "etcd: { endpoints: [http://127.0.0.1:2379], prefix: /tinylb/ }",
        "",
      ].join("\n"),
    );
    tinylb.signal("SIGHUP");
    await tinylb.waitForLog("settings changed in the config file need a restart");

    expect(tinylb.stderr).toContain('settings changed in the config file applied component=main file=');
    expect(tinylb.stderr).toContain('applied="logLevel=info->debug shutdownGrace=10s->2s connectTimeout=20s->1s keepalive=30s->5s"');
    // The warning names each setting that waits for a restart with its running and its new value, and a file by its path.
    const restartLine = tinylb.stderr.split("\n").find((line) => line.includes("need a restart"))!;
    const restartChanges = /settings="([^"]*)"/.exec(restartLine)?.[1]?.split(" ");
    expect(restartChanges).toEqual([
      "maxConnections=0->10",
      "workers=1->2",
      "onRemoval=close->drain",
      `adminTokenFile=none->${join(directory, "token")}`,
      "dns.names=none->api.example.test:6443",
      "dns.interval=30s->10s",
      "etcd.endpoints=none->http://127.0.0.1:2379",
      "etcd.prefix=none->/tinylb/",
    ]);
    // Status names the settings that wait for a restart.
    const status = await runTinylb(["status", "--admin", `unix:${admin}`]);
    expect(status.stdout).toContain("\nRestart needed: the config file changes maxConnections, workers, onRemoval, adminTokenFile, dns and etcd; the running values stay until tinylb restarts\n");

    // The debug level shows each connection, and the new connect timeout applies to the next dial.
    const first = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    await tinylb.waitForLog("DEBUG connection opened");
    const second = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    await tinylb.waitForLog(/dial failed .*backend=slow /, 15_000);
    expect(tinylb.stderr).toContain("connect timed out after 1000 ms");
    first.end();
    second.end();

    // A second reload of the same file applies nothing and repeats no warning, but the restart list stays.
    const reloadCount = async (): Promise<number> => {
      const metrics = await (await fetch("http://localhost/metrics", { unix: admin } as RequestInit)).text();

      return Number(/^tinylb_config_reloads_total (\d+)$/m.exec(metrics)?.[1]);
    };
    const before = await reloadCount();
    tinylb.signal("SIGHUP");
    await waitFor("the second reload", async () => (await reloadCount()) === before + 1);
    expect(tinylb.stderr.split("need a restart").length).toBe(2);
    expect(tinylb.stderr.split("settings changed in the config file applied").length).toBe(2);
    const statusAfter = await runTinylb(["status", "--admin", `unix:${admin}`]);
    expect(statusAfter.stdout).toContain("\nRestart needed: the config file changes maxConnections, workers, onRemoval, adminTokenFile, dns and etcd;");
  } finally {
    fast.stop(true);
    await hanging.stop();
  }
}, 60_000);

test("binary names probe changes applied on reload", async () => {
  const backend = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const config = join(directory, "probes.yaml");
    const backends = (probe: string): string[] => ["backends:", `  - { id: a, target: "127.0.0.1:${backend.port}"${probe} }`, `  - { id: b, target: "127.0.0.1:${backend.port}" }`];
    writeFileSync(config, ["listen: 127.0.0.1:0", ...backends(""), ""].join("\n"));
    await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config"]);
    await tinylb.waitForLog("tinylb started");

    writeFileSync(config, ["listen: 127.0.0.1:0", ...backends(", probe: { interval: 2s }"), "probe: { kind: tcp, interval: 1s }", "dialBackoff: 2s", ""].join("\n"));
    tinylb.signal("SIGHUP");
    await tinylb.waitForLog("settings changed in the config file applied");
    expect(tinylb.stderr).toContain('applied="probe.kind=off->tcp probe.interval=5s->1s probe.timeout=2s->1s (follows probe.interval) probe.interval of a=unset->2s dialBackoff=1s->2s"');

    writeFileSync(config, ["listen: 127.0.0.1:0", ...backends(""), ""].join("\n"));
    tinylb.signal("SIGHUP");
    await waitFor("a second applied line", () => tinylb.stderr.split("settings changed in the config file applied").length === 3);
    expect(tinylb.stderr).toContain('applied="probe.kind=tcp->off probe.interval=1s->5s probe.timeout=1s->2s (follows probe.interval) probe.interval of a=2s->unset dialBackoff=2s->1s"');
  } finally {
    backend.stop(true);
  }
}, 60_000);

test("binary rejects a backend that is its own listener", async () => {
  const socket = join(directory, "self.sock");
  const tinylb = TinylbProcess.start(["--listen", `unix:${socket}`, "--backend", `self=unix:${socket}`]);
  try {
    expect(await tinylb.process.exited).toBe(2);
    await waitFor("the error line", () => tinylb.stderr.includes("loop back"));
    expect(tinylb.stderr).toContain(`invalid backend: backend "self" has target unix:${socket}, which is tinylb's own listen address unix:${socket}`);
  } finally {
    await tinylb[Symbol.asyncDispose]();
  }
});

test("binary keeps the set when a reload adds its own listener", async () => {
  const backend = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const config = join(directory, "self.yaml");
    const good = ["listen: 127.0.0.1:0", "backends:", `  - { id: a, target: "127.0.0.1:${backend.port}" }`];
    writeFileSync(config, [...good, ""].join("\n"));
    const admin = join(directory, "reload-admin.sock");
    await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config", "--admin", `unix:${admin}`]);
    await tinylb.waitForLog("tinylb started");
    const port = Number(/listening .*listener=127\.0\.0\.1:(\d+)/.exec(tinylb.stderr)![1]);

    writeFileSync(config, [...good, `  - { id: self, target: "localhost:${port}" }`, ""].join("\n"));
    tinylb.signal("SIGHUP");
    await tinylb.waitForLog("config reload rejected; keeping the last good backend set");

    expect(tinylb.stderr).toContain(`backend \\"self\\" has target localhost:${port}, which is tinylb's own listen address 127.0.0.1:${port}`);
    expect(tinylb.stderr).not.toContain("self=localhost");
  } finally {
    backend.stop(true);
  }
}, 60_000);

test("binary applies a reload sent while relay workers start", async () => {
  const config = join(directory, "early-reload.yaml");
  const lines = (port: number): string => `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "127.0.0.1:${port}" }\n`;
  writeFileSync(config, lines(1));
  // Many workers make their start last long enough for a signal sent on the first listening line.
  await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config", "--workers", "16"]);
  await tinylb.waitForLog("listening");
  writeFileSync(config, lines(2));
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("tinylb started");

  await tinylb.waitForLog(/backend set changed .*retargeted="a=127\.0\.0\.1:1->127\.0\.0\.1:2"/);
  expect(tinylb.stderr).toContain("reason=SIGHUP");
});

test("binary rejects a reload without listen", async () => {
  const backend = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const config = join(directory, "no-listen.yaml");
    writeFileSync(config, ["listen: 127.0.0.1:0", "backends:", `  - { id: a, target: "127.0.0.1:${backend.port}" }`, ""].join("\n"));
    const admin = join(directory, "no-listen-admin.sock");
    await using tinylb = TinylbProcess.start(["--config", config, "--admin", `unix:${admin}`]);
    await tinylb.waitForLog("tinylb started");

    // A save seen by the file watch, then a SIGHUP, each of a file that a start rejects.
    for (const [content, count] of [["# only a comment\n", 2], ["{}\n", 3]] as const) {
      writeFileSync(config, content);
      tinylb.signal("SIGHUP");
      await waitFor("a rejected reload", () => tinylb.stderr.split("config reload rejected; keeping the last good backend set").length >= count);
    }
    expect(tinylb.stderr).toContain(`no listen address: pass --listen ADDR or set listen in ${config}`);
    // Longer than the 1 s wait of a save that removes backends.
    await Bun.sleep(1500);
    expect(tinylb.stderr).not.toContain("removed=");

    const status = await runTinylb(["status", "--admin", `unix:${admin}`]);
    expect(status.stdout).toContain("rejected, so the last good config keeps serving: no listen address");
  } finally {
    backend.stop(true);
  }
}, 60_000);

test("binary accepts a reload without listen given --listen", async () => {
  const backend = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const config = join(directory, "listen-flag.yaml");
    writeFileSync(config, ["backends:", `  - { id: a, target: "127.0.0.1:${backend.port}" }`, ""].join("\n"));
    await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config", "--listen", "127.0.0.1:0", "--admin", "off"]);
    await tinylb.waitForLog("tinylb started");

    writeFileSync(config, ["backends:", `  - { id: b, target: "127.0.0.1:${backend.port}" }`, ""].join("\n"));
    tinylb.signal("SIGHUP");
    await tinylb.waitForLog(/backend set changed .*added="b=/);
    expect(tinylb.stderr).not.toContain("config reload rejected");
  } finally {
    backend.stop(true);
  }
}, 60_000);

/**
 * End-to-end tests of `dist/tinylb check`: its exit codes and output, errors equal to those of
 * a failing start, and that it binds, dials, resolves and writes nothing. Each test of what
 * check leaves alone has a partner that starts the balancer on the same settings, to show
 * that the test would notice a start.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener, udp } from "bun";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb as runTinylbIn, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-check-e2e-");
const adminSocket = join(directory, "admin.sock");

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Writes a config file into the test folder and returns its path. */
function configFile(name: string, lines: string[]): string {
  const path = join(directory, name);
  writeFileSync(path, lines.join("\n") + "\n");

  return path;
}

/** Runs dist/tinylb in the test folder until it exits (killed after 15 s) and returns its exit code and output. */
function runTinylb(args: string[]): ReturnType<typeof runTinylbIn> {
  return runTinylbIn(args, { cwd: directory });
}

/**
 * Starts a loopback TCP listener that counts the connections it accepts. `settle` connects
 * once itself and waits for that connection. The kernel queues connections in order, so by
 * then every connection made before it has been counted too.
 */
async function countingListener(): Promise<{ port: number; accepted: () => number; settle: () => Promise<void> }> {
  let accepted = 0;
  let settled = false;
  const listener: TCPSocketListener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: () => {
        accepted++;
      },
      data: (_socket: Socket, data: Buffer) => {
        settled ||= data.toString() === "settle";
      },
    },
  });
  cleanup.push(() => listener.stop(true));
  const settle = async (): Promise<void> => {
    const client = await Bun.connect({ hostname: "127.0.0.1", port: listener.port, socket: { data() {} } });
    client.write("settle");
    await waitFor("the settling connection", () => settled);
    client.end();
    accepted--;
  };

  return { port: listener.port, accepted: () => accepted, settle };
}

/**
 * Starts a loopback UDP socket in place of a DNS server. It counts datagrams and sends no
 * reply. `settle` sends one datagram itself and waits for it, as for `countingListener`.
 */
async function countingResolver(): Promise<{ port: number; received: () => number; settle: () => Promise<void> }> {
  let received = 0;
  let settled = false;
  const socket: udp.Socket<"buffer"> = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data: (_socket, data) => {
        if (data.toString() === "settle") {
          settled = true;
        } else {
          received++;
        }
      },
    },
  });
  cleanup.push(() => socket.close());
  const settle = async (): Promise<void> => {
    const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    sender.send("settle", socket.port, "127.0.0.1");
    await waitFor("the settling datagram", () => settled);
    sender.close();
  };

  return { port: socket.port, received: () => received, settle };
}

test("check accepts a good config", async () => {
  const path = configFile("good.yaml", [
    "listen: 127.0.0.1:7443",
    "backends:",
    "  - { id: api-1, target: 10.0.0.11:6443 }",
    "  - { id: api-2, target: 10.0.0.12:6443 }",
    "  - { id: api-3, target: 10.0.0.13:6443 }",
  ]);

  const { exitCode, stdout, stderr } = await runTinylb(["check", "--config", path, "--admin", `unix:${adminSocket}`]);

  expect(stdout).toBe(`config OK: 3 backends, 1 listener (${path})\n`);
  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});

test("check escapes control characters of a value", async () => {
  // A target with a newline and a terminal escape sequence (ESC [31m, red text).
  const path = configFile("control.yaml", ["listen: 127.0.0.1:7443", 'backends: [{ id: b1, target: "127.0.0.1:9\\n x=\\"y\\" \\u001b[31mRED" }]']);

  const { exitCode, stderr } = await runTinylb(["check", "--config", path, "--admin", "off"]);

  expect(exitCode).toBe(2);
  expect(stderr).toContain('invalid address "127.0.0.1:9\\n x="y" \\u001b[31mRED"');
  expect(stderr).not.toContain("\u001b");
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
});

test("check accepts flags without a file", async () => {
  const { exitCode, stdout } = await runTinylb(["check", "--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1", "--admin", "off"]);

  expect(stdout).toBe("config OK: 1 backend, 1 listener\n");
  expect(exitCode).toBe(0);
});

test("check warns about a disabled key a flag replaces", async () => {
  const path = configFile("flag-replaces-disabled.yaml", ["listen: 127.0.0.1:7443", "backends:", "  - { id: a, target: 10.0.0.1:1, disabled: true }", "  - { id: b, target: 10.0.0.2:1, disabled: true }"]);

  const { exitCode, stdout, stderr } = await runTinylb(["check", "--config", path, "--backend", "a=10.0.0.9:1", "--admin", "off"]);

  // The warning that a start logs on the same settings (see disabled-marks-binary.test.ts).
  expect(stderr).toMatch(/WARN\s+disabled key in the config file ignored: a provider that takes precedence publishes the backend id .*backend=a provider=static/);
  expect(stderr).not.toContain("backend=b");
  expect(stdout).toBe(`config OK: 2 backends, 1 listener (${path})\n`);
  expect(exitCode).toBe(0);
});

test("check warns about other keys a flag replaces", async () => {
  const path = configFile("flag-replaces-keys.yaml", ["listen: 127.0.0.1:7443", "backends:", "  - { id: a, target: 10.0.0.1:1, slowStart: 30s, probe: { kind: tcp } }"]);

  const { exitCode, stderr } = await runTinylb(["check", "--config", path, "--backend", "a=10.0.0.9:1", "--admin", "off"]);

  expect(stderr).toMatch(/WARN\s+backend keys in the config file ignored: a --backend flag with the same id replaces the entry; drop the keys, or the flag to use the file's entry .*backend=a keys=probe,slowStart/);
  expect(exitCode).toBe(0);
});

test("check logs no disabled warning without the flag", async () => {
  const path = configFile("disabled-only.yaml", ["listen: 127.0.0.1:7443", "backends: [{ id: a, target: 10.0.0.1:1, disabled: true }]"]);

  const { exitCode, stderr } = await runTinylb(["check", "--config", path, "--admin", "off"]);

  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});

const missingCa = join(directory, "missing-ca.pem");
/** A socket path of 121 bytes, over the 107 that Linux allows. */
const longSocketPath = join(directory, "a".repeat(115 - directory.length)) + ".sock";

test.each([
  ["logFormat json", ["logFormat: json"], []],
  ["--log-format json", [], ["--log-format", "json"]],
])("check error is JSON with %s", async (_, extraLines, flags) => {
  const path = configFile(`json-error-${flags.length}.yaml`, ["listen: 127.0.0.1:0", `probe: { kind: https, tls: { ca: ${missingCa} } }`, ...extraLines]);
  const args = ["--config", path, "--admin", `unix:${adminSocket}`, ...flags];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.exitCode).toBe(2);
  expect(start.exitCode).toBe(2);
  const lines = check.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  expect(line).toMatchObject({ level: "error", msg: "config check failed", component: "main", exitCode: 2 });
  expect(line.err).toBe(`invalid config ${path}: probe.tls.ca: cannot read ${missingCa}: the file does not exist`);
  const startLine = JSON.parse(start.stderr.trimEnd()) as Record<string, unknown>;
  expect(startLine).toMatchObject({ level: "error", msg: "start failed", component: "main", exitCode: 2 });
  expect(startLine.err).toBe(line.err);
});

test.each([
  ["a bad target", ["listen: 127.0.0.1:0", "backends: [{ id: a, target: nowhere }]"], 'invalid address "nowhere"'],
  ["an unknown key", ["listen: 127.0.0.1:0", "backend: []"], 'unknown key "backend" (did you mean "backends"?)'],
  ["a YAML syntax error", ["listen: [127.0.0.1:0", "backends: []"], "failed at line 1"],
  ["a missing probe CA file", ["listen: 127.0.0.1:0", `probe: { kind: https, tls: { ca: ${missingCa} } }`], `probe.tls.ca: cannot read ${missingCa}: the file does not exist`],
  ["a relative probe key path", ["listen: 127.0.0.1:0", "probe: { kind: https, tls: { cert: probe.crt, key: probe.key } }"], `probe.tls.cert: cannot read probe.crt (relative to the working folder ${directory}): the file does not exist`],
  ["a long Unix listen path", [`listen: "unix:${longSocketPath}"`], "listen: invalid address \"unix:/"],
  ["a long Unix target", ["listen: 127.0.0.1:0", `backends: [{ id: long, target: "unix:${longSocketPath}" }]`], 'invalid target for backend "long"'],
  ["a number for an enum", ["listen: 127.0.0.1:0", "proxyProtocol: 2"], 'proxyProtocol: must be one of "off", "v1", "v2" (got 2)'],
  ["an unknown enum value", ["listen: 127.0.0.1:0", "balance: random"], 'balance: must be one of "roundrobin", "leastconn" (got "random")'],
  ["a number for a string", ["listen: 127.0.0.1:0", "metrics: 9180"], "metrics: expected a string, got a number (got 9180)"],
  ["a number for a backend id", ["listen: 127.0.0.1:0", "backends: [{ id: 1, target: 10.0.0.1:6443 }]"], "backends[0].id: expected a string, got a number (got 1)"],
  ["a number for a backend enum", ["listen: 127.0.0.1:0", "backends: [{ id: a, target: 10.0.0.1:6443, proxyProtocol: 1 }]"], 'backends[0].proxyProtocol (backend "a"): must be one of "off", "v1", "v2" (got 1)'],
  ["a status code below 100", ["listen: 127.0.0.1:0", "probe: { kind: http, expectStatus: [200, 1] }"], "probe.expectStatus[1]: must be at least 100 (got 1)"],
  ["a zero connect timeout", ["listen: 127.0.0.1:0", "connectTimeout: 0"], "connectTimeout: use a duration above zero, such as 3s (got 0)"],
])("check rejects %s as a start does", async (name, lines, value) => {
  const path = configFile(`${name.replaceAll(" ", "-")}.yaml`, lines);
  const admin = ["--admin", `unix:${adminSocket}`];

  const check = await runTinylb(["check", "--config", path, ...admin]);
  const start = await runTinylb(["--config", path, ...admin]);

  expect(check.stderr).toContain(value);
  expect(check.stderr.trim().split("\n")).toHaveLength(1);
  expect(check.stderr).toBe(start.stderr);
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(2);
  expect(start.exitCode).toBe(2);
});

test.each([
  ["a misspelt flag", ["check", "--lisen", "127.0.0.1:0"], "tinylb: unknown flag --lisen (did you mean --listen?); see tinylb check --help\n"],
  ["an invalid --backend", ["check", "--listen", "127.0.0.1:0", "--backend", "a=10.0.0.300:9"], '"10.0.0.300" is not a valid IPv4 address'],
  ["a stray argument", ["check", "--listen", "127.0.0.1:0", "tinylb.yaml"], 'unexpected argument "tinylb.yaml"; see tinylb check --help'],
])("check rejects %s with exit 2", async (_, args, message) => {
  const { exitCode, stdout, stderr } = await runTinylb(args);

  expect(stderr).toContain(message);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(stdout).toBe("");
  expect(exitCode).toBe(2);
});

test("check rejects a long Unix socket path as a start does", async () => {
  const detail = "the path has 121 bytes, more than the 107 a Unix socket path can have; use a shorter path";
  const configPath = configFile("long-socket-paths.yaml", [`listen: "unix:${longSocketPath}"`, `backends: [{ id: long, target: "unix:${longSocketPath}" }]`]);

  for (const args of [
    ["--listen", `unix:${longSocketPath}`, "--admin", "off"],
    ["--listen", "127.0.0.1:0", "--backend", `long=unix:${longSocketPath}`, "--admin", "off"],
    ["--config", configPath, "--admin", "off"],
  ]) {
    const check = await runTinylb(["check", ...args]);
    const start = await runTinylb(args);

    expect(check.stderr).toContain(detail);
    expect(check.stdout).toBe("");
    expect(check.exitCode).toBe(2);
    expect(start.stderr.replace("see tinylb --help", "see tinylb check --help")).toBe(check.stderr);
    expect(start.exitCode).toBe(2);
  }
});

test("check rejects relative Unix socket paths as a start does", async () => {
  for (const [args, detail] of [
    [["--listen", "unix:lb.sock", "--admin", "off"], '--listen: invalid address "unix:lb.sock": the socket path "lb.sock" is relative'],
    [["--listen", "127.0.0.1:0", "--admin", "unix:admin.sock"], 'admin API address unix:admin.sock rejected: the socket path "admin.sock" is relative'],
  ] as const) {
    const check = await runTinylb(["check", ...args]);
    const start = await runTinylb([...args]);

    expect(check.stderr).toContain(detail);
    expect(check.stdout).toBe("");
    expect(check.exitCode).toBe(2);
    expect(start.stderr.replace("see tinylb --help", "see tinylb check --help")).toBe(check.stderr);
    expect(start.exitCode).toBe(2);
    expect(existsSync(join(directory, "lb.sock"))).toBe(false);
    expect(existsSync(join(directory, "admin.sock"))).toBe(false);
  }
});

test("check rejects a target through a symlinked listen folder", async () => {
  const folder = join(directory, "listen-folder");
  mkdirSync(folder);
  symlinkSync(folder, join(directory, "wl"));
  const args = ["--listen", `unix:${folder}/self.sock`, "--backend", `self=unix:${directory}/wl/self.sock`, "--admin", "off"];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toContain(`backend "self" has target unix:${directory}/wl/self.sock, which is tinylb's own listen address unix:${folder}/self.sock`);
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(2);
  expect(start.stderr).toBe(check.stderr);
  expect(start.exitCode).toBe(2);
  expect(existsSync(join(folder, "self.sock"))).toBe(false);
});

test("check rejects a clashing --metrics", async () => {
  const args = ["--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1", "--admin", "off", "--metrics", "0.0.0.0:7443"];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toBe("tinylb: --metrics 0.0.0.0:7443 overlaps --listen 127.0.0.1:7443; an address can be bound only once, so remove one or change it\n");
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(2);
  expect(start.stderr).toBe(check.stderr);
  expect(start.exitCode).toBe(2);
});

test.each([
  ["a backend on its port", ["--listen", "*:7443", "--backend", "a=127.0.0.1:7443"], "tinylb: invalid backend: backend \"a\" has target 127.0.0.1:7443, which is tinylb's own listen address 0.0.0.0:7443"],
  ["an address of its port", ["--listen", "*:7443", "--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1"], "tinylb: --listen 127.0.0.1:7443 overlaps --listen 0.0.0.0:7443"],
])("check reads a * listen host as 0.0.0.0 beside %s", async (_case, flags, detail) => {
  const args = [...flags, "--admin", "off"];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toStartWith(detail);
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(2);
  expect(start.stderr).toBe(check.stderr);
  expect(start.exitCode).toBe(2);
});

test("start binds a * listen host on IPv4 only", async () => {
  await using tinylb = TinylbProcess.start(["--listen", "*:0", "--backend", "a=10.0.0.1:1"]);
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  expect(tinylb.stderr).toContain(`listening component=server listener=0.0.0.0:${port}`);
  const ipv4 = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
  ipv4.end();
  await expect(Bun.connect({ hostname: "::1", port, socket: { data() {} } })).rejects.toThrow();
});

test("check rejects a Unix listen folder that is missing", async () => {
  const missing = join(tmpdir(), `tinylb-check-missing-${process.pid}`, "lb.sock");
  const args = ["--listen", `unix:${missing}`, "--backend", "a=10.0.0.1:1", "--admin", "off"];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toContain(`the folder ${dirname(missing)} does not exist; create it or pick another path`);
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(1);
  expect(start.stderr).toBe(check.stderr);
  expect(start.exitCode).toBe(1);
});

test("check rejects a Unix listen folder that is a file", async () => {
  const file = configFile("not-a-folder", []);
  const args = ["--listen", `unix:${join(file, "lb.sock")}`, "--backend", "a=10.0.0.1:1", "--admin", "off"];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toContain(`listen on unix:${join(file, "lb.sock")} failed: ${file} is a file, not a folder; pick another path (ENOTDIR)`);
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(1);
  expect(start.stderr).toBe(check.stderr);
  expect(start.exitCode).toBe(1);
});

test("check rejects an admin socket below a file", async () => {
  const file = configFile("admin-not-a-folder", []);
  const socket = join(file, "run", "admin.sock");
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=10.0.0.1:1", "--admin", `unix:${socket}`];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toBe(`tinylb: admin API listen on unix:${socket} failed: ${file} is a file, not a folder; pick another path (ENOTDIR)\n`);
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(1);
  expect(start.stderr).toBe(check.stderr);
  expect(start.exitCode).toBe(1);
});

test("check --help describes the command", async () => {
  const { exitCode, stdout, stderr } = await runTinylb(["check", "--help"]);

  expect(stdout).toContain("tinylb check --config FILE [options]");
  expect(stdout).toContain("cannot tell whether a listen address will be free");
  expect(stdout).not.toContain("--max-connections N");
  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});

test("main help lists the check command", async () => {
  const { exitCode, stdout } = await runTinylb(["--help"]);

  expect(stdout).toContain("tinylb check --config FILE [options]");
  expect(exitCode).toBe(0);
});

/** Occupies a loopback port with a listener of the test, as a program running at check time would. */
function occupiedPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  cleanup.push(() => listener.stop(true));

  return listener.port;
}

test("check accepts a listen port in use", async () => {
  const port = occupiedPort();
  const path = configFile("port-in-use.yaml", [`listen: 127.0.0.1:${port}`, "backends: [{ id: a, target: 10.0.0.1:1 }]"]);

  const { exitCode, stdout, stderr } = await runTinylb(["check", "--config", path, "--admin", "off"]);

  expect(stdout).toBe(`config OK: 1 backend, 1 listener (${path})\n`);
  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});

test("check accepts a metrics port in use", async () => {
  const port = occupiedPort();

  const { exitCode, stdout, stderr } = await runTinylb(["check", "--listen", "127.0.0.1:0", "--admin", "off", "--metrics", `127.0.0.1:${port}`]);

  expect(stdout).toBe(`config OK: 0 backends, 1 listener, metrics on 127.0.0.1:${port}\n`);
  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});

test("start fails on the listen port in use", async () => {
  const port = occupiedPort();
  const path = configFile("port-in-use-start.yaml", [`listen: 127.0.0.1:${port}`, "backends: [{ id: a, target: 10.0.0.1:1 }]"]);

  const { exitCode, stderr } = await runTinylb(["--config", path, "--admin", "off"]);

  expect(stderr).toContain("already in use");
  expect(exitCode).toBe(1);
});

/**
 * Writes a config whose start reaches three peers of the test, a probed backend, an etcd
 * member and a DNS server, and writes a state file. Returns the path and the peers.
 */
async function fullConfig(name: string): Promise<{ path: string; stateFile: string; backend: Awaited<ReturnType<typeof countingListener>>; etcd: Awaited<ReturnType<typeof countingListener>>; dns: Awaited<ReturnType<typeof countingResolver>> }> {
  const backend = await countingListener();
  const etcd = await countingListener();
  const dns = await countingResolver();
  const stateFile = join(directory, `${name}-state.json`);
  const path = configFile(`${name}.yaml`, [
    "listen: 127.0.0.1:0",
    `backends: [{ id: probed, target: 127.0.0.1:${backend.port} }]`,
    "probe: { kind: tcp, interval: 100ms }",
    `dns: { names: ["localhost:6443"], resolver: 127.0.0.1:${dns.port}, interval: 1s }`,
    `etcd: { endpoints: ["http://127.0.0.1:${etcd.port}"], prefix: /tinylb/backends/ }`,
    `stateFile: ${stateFile}`,
  ]);

  return { path, stateFile, backend, etcd, dns };
}

test("check contacts no peer and writes no file", async () => {
  const { path, stateFile, backend, etcd, dns } = await fullConfig("full-check");

  const { exitCode, stdout, stderr } = await runTinylb(["check", "--config", path, "--admin", `unix:${adminSocket}`]);
  await backend.settle();
  await etcd.settle();
  await dns.settle();

  expect(stdout).toBe(`config OK: 1 backend, 1 listener, backends also from DNS and etcd (${path})\n`);
  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
  expect(backend.accepted()).toBe(0);
  expect(etcd.accepted()).toBe(0);
  expect(dns.received()).toBe(0);
  expect(existsSync(adminSocket)).toBe(false);
  expect(existsSync(stateFile)).toBe(false);
});

test("start contacts the peers and writes the files", async () => {
  const { path, stateFile, backend, etcd, dns } = await fullConfig("full-start");
  const admin = join(directory, "start-admin.sock");

  const tinylb = TinylbProcess.start(["--config", path, "--admin", `unix:${admin}`]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  await waitFor("a probe of the backend", () => backend.accepted() > 0);
  await waitFor("a connection to etcd", () => etcd.accepted() > 0);
  await waitFor("a DNS query", () => dns.received() > 0);

  expect(existsSync(admin)).toBe(true);
  expect(existsSync(stateFile)).toBe(true);
  expect(await tinylb.stop()).toBe(0);
});

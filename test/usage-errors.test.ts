/**
 * Start-up errors of the compiled `dist/tinylb`: each bad command line or clash exits with
 * one line on stderr that names the problem and the fix.
 */
import { expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trackChild } from "./support/child-processes.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY } from "./support/tinylb-process.ts";
import { within } from "./support/wait.ts";

const directory = tempDirectory("tinylb-usage-");
const config = join(directory, "listen.yaml");
writeFileSync(config, "listen: 127.0.0.1:0\n");

/** Runs dist/tinylb until it exits (at most 15 s) and returns its exit code and stderr. */
async function runTinylb(args: string[]): Promise<{ exitCode: number; stderr: string }> {
  const child = trackChild(Bun.spawn([BINARY, ...args], { cwd: directory, stdin: "ignore", stdout: "ignore", stderr: "pipe" }));
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    const [stderr, exitCode] = await within(`tinylb ${args.join(" ")} to exit`, Promise.all([new Response(child.stderr).text(), child.exited]), 20_000);

    return { exitCode, stderr };
  } finally {
    clearTimeout(timer);
  }
}

test.each([
  ["tinylb", [], "tinylb --help"],
  ["tinylb check", ["check"], "tinylb check --help"],
])("%s without a listen address names --config", async (_, args, help) => {
  const { exitCode, stderr } = await runTinylb(args);

  expect(stderr).toBe(`tinylb: no listen address: pass --listen ADDR, or --config FILE for a config file that sets listen; see ${help}\n`);
  expect(exitCode).toBe(2);
});

/**
 * Makes a folder laid out as a Kubernetes ConfigMap volume: each key is a symlink to the file in
 * the hidden `..data` folder, and `names` are the keys.
 */
function configMapFolder(name: string, names: string[]): string {
  const folder = join(directory, name);
  mkdirSync(join(folder, "..data"), { recursive: true });
  for (const key of names) {
    writeFileSync(join(folder, "..data", key), "listen: 127.0.0.1:0\n");
    symlinkSync(join("..data", key), join(folder, key));
  }

  return folder;
}

test("config folder names the file in it", async () => {
  const folder = configMapFolder("configmap", ["tinylb.yaml"]);

  for (const args of [["--config", folder], ["check", "--config", folder]]) {
    const { exitCode, stderr } = await runTinylb(args);

    expect(stderr).toBe(`tinylb: read config ${folder} failed: it is a folder, not a file; pass the config file in it: --config ${folder}/tinylb.yaml\n`);
    expect(exitCode).toBe(2);
  }
});

const unixSocket = join(directory, "x.sock");
const regularFile = join(directory, "regular.file");
writeFileSync(regularFile, "");
/** A socket path of 121 bytes, over the 107 that Linux allows. */
const longSocketPath = join(directory, "a".repeat(120 - directory.length - ".sock".length)) + ".sock";

test.each([
  ["duplicate --backend ids with --config", ["--config", config, "--backend", "a=127.0.0.1:9101", "--backend", "a=127.0.0.1:9102", "--admin", "off"], 'duplicate id "a", already given as a=127.0.0.1:9101'],
  ["duplicate --backend ids", ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--backend", "a=127.0.0.1:10", "--admin", "off"], 'duplicate id "a", already given as a=127.0.0.1:9'],
  ["a repeated --listen", ["--listen", "127.0.0.1:7035", "--listen", "127.0.0.1:7035", "--admin", "off"], "--listen 127.0.0.1:7035 is given twice"],
  ["--listen inside a wildcard", ["--listen", "[::]:7036", "--listen", "127.0.0.1:7036", "--admin", "off"], "--listen 127.0.0.1:7036 overlaps --listen [::]:7036"],
  ["one IPv6 --listen written two ways", ["--listen", "[::1]:7037", "--listen", "[0:0::1]:7037", "--admin", "off"], "--listen [0:0::1]:7037 is the same address as --listen [::1]:7037"],
  ["the admin API on a listen socket", ["--admin", `unix:${unixSocket}`, "--listen", `unix:${unixSocket}`], `admin API unix:${unixSocket} is also the --listen address`],
  ["a value flag at the end", ["--connect-timeout", "--admin", "off"], "--connect-timeout needs a value"],
  ["a keepalive under 1s", ["--listen", "127.0.0.1:0", "--keepalive", "1ms"], '--keepalive: the keepalive time must be 0 (off) or at least 1s, since the kernel counts it in whole seconds (got "1ms")'],
  ["a number for --proxy-protocol", ["--listen", "127.0.0.1:0", "--proxy-protocol", "2", "--admin", "off"], '--proxy-protocol "2" is not valid; use one of off, v1, v2'],
  ["an unknown --balance", ["--listen", "127.0.0.1:0", "--balance", "random", "--admin", "off"], '--balance "random" is not valid; use one of roundrobin, leastconn'],
  ["a zero --probe-interval", ["--listen", "127.0.0.1:0", "--probe-interval", "0", "--admin", "off"], '--probe-interval: use a duration above zero, such as 1s or 5s (got "0")'],
  ["a short --dns-interval", ["--listen", "127.0.0.1:0", "--dns-interval", "500ms", "--admin", "off"], '--dns-interval: the interval must be at least 1s (got "500ms")'],
  ["an invalid dotted quad", ["--listen", "127.0.0.1:0", "--backend", "a=10.0.0.300:9"], '"10.0.0.300" is not a valid IPv4 address'],
  ["-v", ["-v"], "unknown flag -v (did you mean -V, --version?)"],
  ["a misspelt command", ["stauts"], 'unknown command "stauts" (did you mean status?)'],
  ["a listen address without host", ["--listen", ":7021"], "use 127.0.0.1:7021 for this machine only, or 0.0.0.0:7021 or [::]:7021 for every interface"],
  ["a relative Unix listen path", ["--listen", "unix:relative.sock", "--admin", "off"], `--listen: invalid address "unix:relative.sock": the socket path "relative.sock" is relative, so it would depend on tinylb's working folder; use an absolute path, as in unix:/run/app.sock`],
  ["a relative admin socket path", ["--listen", "127.0.0.1:0", "--admin", "unix:admin.sock"], `admin API address unix:admin.sock rejected: the socket path "admin.sock" is relative, so it would depend on tinylb's working folder`],
  ["a long Unix listen path", ["--listen", `unix:${longSocketPath}`, "--admin", "off"], `--listen: invalid address "unix:${longSocketPath}": the path has 121 bytes, more than the 107 a Unix socket path can have; use a shorter path`],
  ["a long Unix backend path", ["--listen", "127.0.0.1:0", "--backend", `long=unix:${longSocketPath}`, "--admin", "off"], `--backend: invalid target for backend "long": invalid address "unix:${longSocketPath}": the path has 121 bytes`],
  ["demo with --backend", ["demo", "--backend", "a=127.0.0.1:9"], "--backend is not valid with tinylb demo, which takes only --listen ADDR and --admin ADDR"],
  [
    "status with a bare socket path",
    ["status", "--admin", "/tmp/x.sock"],
    '--admin: invalid address "/tmp/x.sock": expected host:port, [ipv6]:port or unix:/path; for a Unix socket, write unix:/tmp/x.sock',
  ],
  ["a bare admin socket path", ["--admin", "/tmp/x.sock"], "[ipv6]:port or unix:/path, or off; for a Unix socket, write unix:/tmp/x.sock"],
  ["a misspelt status flag", ["status", "--jsn"], "; see tinylb status --help"],
  ["a misspelt balancer flag", ["--lisen", "127.0.0.1:0"], "; see tinylb --help"],
  ["a misspelt disable command", ["disabel", "a"], 'unknown command "disabel" (did you mean disable?)'],
  ["disable without an id", ["disable", "--admin", "unix:/tmp/x.sock"], "missing backend id: use tinylb disable ID, such as tinylb disable api-1; tinylb status lists the ids; see tinylb disable --help"],
  ["disable with two ids", ["disable", "a", "b"], 'unexpected argument "b": tinylb disable takes one backend id; see tinylb disable --help'],
  ["enable with --close-connections", ["enable", "a", "--close-connections"], "--close-connections is not valid with tinylb enable, which takes --admin ADDR and --admin-token-file FILE; see tinylb enable --help"],
  ["disable with an invalid id", ["disable", "a b"], 'invalid backend id "a b"'],
  ["a misspelt remove command", ["remvoe", "a"], 'unknown command "remvoe" (did you mean remove?)'],
  ["add without a target", ["add", "a"], "missing target: use tinylb add ID TARGET, such as tinylb add api-4 10.0.0.14:6443; see tinylb add --help"],
  ["add with three arguments", ["add", "a", "127.0.0.1:9", "b"], 'unexpected argument "b": tinylb add takes a backend id and a target; see tinylb add --help'],
  ["add with an invalid id", ["add", "a b", "127.0.0.1:9"], 'invalid backend id "a b"'],
  ["remove without an id", ["remove", "--admin", "unix:/tmp/x.sock"], "missing backend id: use tinylb remove ID, such as tinylb remove api-4; tinylb status lists the ids; see tinylb remove --help"],
  ...["status", "add a 127.0.0.1:9", "remove a", "disable a", "enable a"].map((command): [string, string[], string] => [
    `tinylb ${command} with a long admin socket path`,
    [...command.split(" "), "--admin", `unix:${longSocketPath}`],
    `tinylb ${command.split(" ")[0]}: cannot connect to unix:${longSocketPath}: the path has 121 bytes, more than the 107 a Unix socket path can have; use a shorter path`,
  ]),
  ["remove with --json", ["remove", "a", "--json"], "--json is not valid with tinylb remove, which takes --admin ADDR and --admin-token-file FILE; see tinylb remove --help"],
])("binary rejects %s with exit 2", async (_, args, message) => {
  const { exitCode, stderr } = await runTinylb(args);

  expect(stderr).toContain(message);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(exitCode).toBe(2);
});

test.each([
  ["a config path that is a folder", ["--config", directory], `read config ${directory} failed: it is a folder, not a file`],
  ["a missing admin token file", ["--listen", "127.0.0.1:0", "--admin", `unix:${join(directory, "admin.sock")}`, "--admin-token-file", join(directory, "none")], `read admin token file ${join(directory, "none")} failed: the file does not exist`],
  [
    "a state file in a missing folder",
    ["--admin", "off", "--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--state-file", join(directory, "no-such-folder", "state.json")],
    `invalid state file ${join(directory, "no-such-folder", "state.json")}: the folder ${join(directory, "no-such-folder")} does not exist; create it or pick another path`,
  ],
])("binary explains %s with exit 2", async (_, args, message) => {
  const { exitCode, stderr } = await runTinylb(args);

  expect(stderr).toContain(message);
  expect(stderr).not.toContain("ENOENT");
  expect(stderr).not.toContain("EISDIR");
  expect(exitCode).toBe(2);
});

test.each([
  ["a missing folder", ["--listen", `unix:${join(directory, "missing", "x.sock")}`], "/missing does not exist; create it or pick another path (ENOENT)"],
  ["a link-local address", ["--listen", "[fe80::1]:0"], "a link-local IPv6 address needs its interface"],
  ["/proc", ["--listen", "unix:/proc/x.sock"], "the folder /proc exists, but its file system does not allow creating a socket in it, as with /proc; pick a folder on a regular file system, such as /run/tinylb or /tmp (ENOENT)"],
  ["a folder that is a file", ["--listen", `unix:${join(regularFile, "x.sock")}`], `${regularFile} is a file, not a folder; pick another path (ENOTDIR)`],
  ["a folder under a file", ["--listen", `unix:${join(regularFile, "below", "x.sock")}`], `${regularFile} is a file, not a folder; pick another path (ENOTDIR)`],
  [
    "/sys",
    ["--listen", "unix:/sys/x.sock"],
    // Root may search and write /sys, so sysfs itself rejects the socket; other users lack the permission first.
    process.getuid?.() === 0
      ? "creating a socket in /sys is not permitted, as on /sys or in an immutable folder; pick a folder on a regular file system, such as /run/tinylb or /tmp (EPERM)"
      : "permission denied: this user cannot create a socket in /sys (EACCES)",
  ],
])("binary explains a listen failure on %s", async (_, args, message) => {
  const { exitCode, stderr } = await runTinylb(["--admin", "off", ...args]);

  expect(stderr).toContain(message);
  expect(exitCode).toBe(1);
});

test.each([
  ["status --help", ["status", "--help"], "tinylb status [--admin ADDR] [--admin-token-file FILE] [--json]", "--max-connections"],
  ["status -h", ["status", "-h"], "--admin-token-file FILE  send the bearer token in FILE", "--max-connections"],
  ["demo --help", ["demo", "--help"], "--max-connections N", "Requests GET /v1/backends"],
  ["disable --help", ["disable", "--help"], "--close-connections      with disable: also close the connections opened for ID", "--max-connections"],
  ["enable -h", ["enable", "a", "-h"], "tinylb enable ID [--admin ADDR] [--admin-token-file FILE]", "--max-connections"],
  ["--help", ["--help"], "tinylb disable ID [--close-connections] [--admin ADDR] [--admin-token-file FILE]", "Sends PUT /v1/backends/ID/state"],
  ["add --help", ["add", "--help"], "Without a state file, a restart forgets them.", "--close-connections"],
  ["remove -h", ["remove", "a", "-h"], "tinylb remove ID [--admin ADDR] [--admin-token-file FILE]", "--max-connections"],
  ["--help with add", ["--help"], "tinylb add ID TARGET [--admin ADDR] [--admin-token-file FILE]", "tinylb add sends PUT"],
])("binary prints the help for %s with exit 0", async (_, args, expected, absent) => {
  const child = trackChild(Bun.spawn([BINARY, ...args], { cwd: directory, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  const [stdout, stderr, exitCode] = await within(`tinylb ${args.join(" ")} to exit`, Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]), 20_000);

  expect(stdout).toContain(expected);
  expect(stdout).not.toContain(absent);
  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});

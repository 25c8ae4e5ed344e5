import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { EchoBackend, FaultProcess } from "./support/fault-peers.ts";
import { BINARY } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

/** System calls that name a path to read, create, write, remove or change. */
const FILE_SYSCALLS = ["open", "openat", "openat2", "creat", "truncate", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown", "fchownat", "mknodat", "inotify_add_watch"];

/** Paths a process opens that are not the operator's files: the loader, the runtime's system probes, time zone and DNS data. */
const SYSTEM_PATHS = [/^\/proc\//, /^\/sys\//, /^\/dev\/(null|urandom|random|tty)$/, /^\/etc\/(localtime|ld\.so\.cache|resolv\.conf|hosts|nsswitch\.conf|gai\.conf|host\.conf)$/, /^\/(usr\/)?lib(64|x32)?\//, /^\/usr\/share\/zoneinfo\//];

const straceAvailable = Bun.spawnSync(["strace", "-qq", "-e", "trace=none", "true"]).success;
if (!straceAvailable) {
  console.log("skipping the file-access test: strace is not installed or ptrace is not permitted here");
}

/** Finds the process id of the child of `parent` whose command name is `name`. */
function childNamed(parent: number, name: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const parentPid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parentPid === parent && command === name) {
        return Number(entry);
      }
    } catch {
      // The process exited while the list was read.
    }
  }
  throw new Error(`no child process "${name}" of ${parent}`);
}

/**
 * Collects every path argument of the traced file system calls from an `strace -f` log. Paths are
 * resolved against `cwd` when relative.
 */
function tracedPaths(log: string, cwd: string): string[] {
  const paths: string[] = [];
  for (const line of log.split("\n")) {
    const call = /^(?:\d+\s+)?(\w+)\((.*)$/.exec(line);
    if (call === null || !FILE_SYSCALLS.includes(call[1]!)) {
      continue;
    }
    for (const quoted of call[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
      const path = quoted[1]!;
      paths.push(path.startsWith("/") ? path : join(cwd, path));
    }
  }

  return paths;
}

// Config and admin input try to steer tinylb at files the operator did not name: a backend whose target
// is a regular file, a listener on an existing file, YAML tags and merge keys, strings that
// look like includes, environment references and home-relative paths.
test.skipIf(!straceAvailable)("config and admin input reach only named files", async () => {
  const folder = mkdtempSync(join(tmpdir(), "tinylb-files-"));
  const secret = join(folder, "secret.txt");
  const otherSecret = join(folder, "other-secret.txt");
  writeFileSync(secret, "do not read\n");
  writeFileSync(otherSecret, "do not read either\n");
  const configPath = join(folder, "tinylb.yaml");
  const statePath = join(folder, "state.json");
  const adminPath = join(folder, "admin.sock");
  const tracePath = join(folder, "trace.log");
  const named = [configPath, statePath, adminPath];
  const backend = new EchoBackend();

  const config = (extra: string): string =>
    [
      "listen: 127.0.0.1:0",
      "backends:",
      `  - id: echo`,
      `    target: "${backend.target}"`,
      `  - id: secret`,
      `    target: "unix:${secret}"`,
      `stateFile: "${statePath}"`,
      extra,
    ].join("\n") + "\n";
  const hostile = [
    `logLevel: !!binary "${Buffer.from(secret).toString("base64")}"`,
    `connectTimeout: !include ${secret}`,
    `keepalive: "\${HOME}/.ssh/id_rsa"`,
    `shutdownGrace: "~/${secret}"`,
    `maxConnections: "file://${secret}"`,
    `backendsFile: ${secret}`,
    `<<: { include: "${secret}" }`,
  ];
  writeFileSync(configPath, config(""));
  const before = { secret: statSync(secret).mtimeMs, other: statSync(otherSecret).mtimeMs };

  const args = ["--config", configPath, "--admin", `unix:${adminPath}`, "--no-watch-config"];
  const child = Bun.spawn(["strace", "-f", "-qq", "-s", "4096", "-e", `trace=${FILE_SYSCALLS.join(",")}`, "-o", tracePath, BINARY, ...args], {
    stdout: "ignore",
    stderr: "pipe",
    cwd: folder,
  });
  let stderr = "";
  void (async () => {
    for await (const chunk of child.stderr) {
      stderr += new TextDecoder().decode(chunk);
    }
  })();
  try {
    // "tinylb started" comes after the SIGHUP handler is installed; a SIGHUP before it would end the process.
    await waitFor("tinylb to start", () => stderr.includes("tinylb started"), 20_000);
    const port = Number(/listener=127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
    // Signals go to tinylb itself, the child of strace.
    const tinylbPid = childNamed(child.pid, "tinylb");

    // Clients make tinylb dial both targets; the file target must fail without being opened.
    for (let i = 0; i < 4; i++) {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } });
      socket.end();
    }

    // Each hostile line on its own must be rejected by a reload, which keeps the running set.
    for (const line of hostile) {
      writeFileSync(configPath, config(line));
      const rejectedBefore = stderr.split("config reload rejected").length;
      process.kill(tinylbPid, "SIGHUP");
      await waitFor(`reload of ${line} to be rejected`, () => stderr.split("config reload rejected").length > rejectedBefore, 10_000);
    }

    // A listener on an existing regular file must fail without touching it.
    const listenOnFile = Bun.spawnSync([BINARY, "--listen", `unix:${otherSecret}`, "--backend", `echo=${backend.target}`, "--admin", "off"], { cwd: folder });
    expect(listenOnFile.exitCode).toBe(1);
    expect(listenOnFile.stderr.toString()).toContain("not a socket");

    // The admin API accepts a target that is a file path, as a Unix socket to dial, and nothing more.
    const put = await fetch("http://localhost/v1/backends", {
      unix: adminPath,
      method: "PUT",
      body: JSON.stringify({ backends: [{ id: "other", target: `unix:${otherSecret}` }] }),
    });
    expect(put.status).toBe(200);
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } });
    socket.end();
    await waitFor("the state file to be written", () => {
      try {
        return readFileSync(statePath, "utf8").includes("other");
      } catch {
        return false;
      }
    }, 10_000);

    process.kill(tinylbPid, "SIGTERM");
    await child.exited;

    const paths = tracedPaths(readFileSync(tracePath, "utf8"), folder);
    const allowed = (path: string): boolean =>
      SYSTEM_PATHS.some((pattern) => pattern.test(path)) ||
      named.some((name) => path === name || path.startsWith(`${name}.`)) ||
      // The admin socket is bound under a temporary name beside it, then renamed into place.
      /^\.tinylb-admin-\d+\.sock$/.test(path.slice(folder.length + 1)) ||
      path === folder ||
      path === dirname(configPath) ||
      path === BINARY;
    const unexpected = [...new Set(paths.filter((path) => !allowed(path)))];
    console.log(`${paths.length} traced path arguments; the named files: ${[...new Set(paths.filter((path) => path.startsWith(folder)))].join(", ")}`);
    expect(paths).toContain(configPath);
    expect(unexpected).toEqual([]);
    expect(paths.filter((path) => path.includes("secret"))).toEqual([]);
    expect(readFileSync(secret, "utf8")).toBe("do not read\n");
    expect(readFileSync(otherSecret, "utf8")).toBe("do not read either\n");
    expect(statSync(secret).mtimeMs).toBe(before.secret);
    expect(statSync(otherSecret).mtimeMs).toBe(before.other);
  } finally {
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await child.exited;
    }
    backend.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}, 90_000);

const canDropPrivileges = process.getuid?.() === 0 && Bun.spawnSync(["setpriv", "--version"]).success;
if (!canDropPrivileges) {
  console.log("skipping the low-port test: it needs root to start tinylb as another user, and setpriv");
}

/** Starts tinylb as user 65534 (nobody) on a port below 1024, with or without CAP_NET_BIND_SERVICE as its only capability. */
async function runAsNobody(port: number, withCapability: boolean): Promise<{ code: number | null; stderr: string }> {
  const capability = withCapability ? ["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"] : [];
  const child = Bun.spawn(
    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...capability, BINARY, "--listen", `127.0.0.1:${port}`, "--backend", "a=127.0.0.1:9", "--admin", "off"],
    { stdout: "ignore", stderr: "pipe", cwd: "/" },
  );
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of child.stderr) {
      stderr += new TextDecoder().decode(chunk);
    }
  })();
  await waitFor("tinylb to start or exit", () => stderr.includes("tinylb started") || child.exitCode !== null, 10_000);
  if (child.exitCode === null) {
    child.kill("SIGTERM");
  }
  const code = await child.exited;
  await reading;

  return { code: stderr.includes("tinylb started") ? null : code, stderr };
}

test.skipIf(!canDropPrivileges)("non-root tinylb binds a low port with only CAP_NET_BIND_SERVICE", async () => {
  // A port below 1024 that nothing else uses: try a few, since a test cannot ask the kernel for one.
  let port = 0;
  let started: { code: number | null; stderr: string } | undefined;
  for (let attempt = 0; attempt < 5 && started?.code !== null; attempt++) {
    port = 600 + Math.floor(Math.random() * 400);
    started = await runAsNobody(port, true);
    if (started.code !== null && !started.stderr.includes("EADDRINUSE")) {
      break;
    }
  }
  expect(started!.stderr).toContain(`listening component=server listener=127.0.0.1:${port}`);
  expect(started!.code).toBeNull();

  const refused = await runAsNobody(port, false);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain("CAP_NET_BIND_SERVICE (EACCES)");
}, 60_000);

test("tinylb refuses a public admin address and never logs the token", async () => {
  const publicAdmin = Bun.spawnSync([BINARY, "--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "0.0.0.0:9000"]);
  expect(publicAdmin.exitCode).toBe(2);
  expect(publicAdmin.stderr.toString()).toContain("it is not a loopback address");

  const folder = mkdtempSync(join(tmpdir(), "tinylb-token-"));
  const tokenFile = join(folder, "token");
  const token = `token-${crypto.randomUUID()}`;
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "127.0.0.1:0", "--admin-token-file", tokenFile, "--log-level", "debug"]);
  try {
    await tinylb.port();
    await waitFor("the admin API", () => /admin API listening .*listener=127\.0\.0\.1:\d+/.test(tinylb.stderr));
    const adminPort = Number(/admin API listening .*listener=127\.0\.0\.1:(\d+)/.exec(tinylb.stderr)![1]);
    expect(tinylb.stderr).toContain("token=required");
    const status = async (authorization?: string): Promise<number> => {
      const response = await fetch(`http://127.0.0.1:${adminPort}/v1/backends`, { headers: authorization === undefined ? {} : { authorization } });

      return response.status;
    };

    expect(await status()).toBe(401);
    expect(await status(`Bearer ${token}x`)).toBe(401);
    expect(await status(`Bearer ${token.slice(0, -1)}`)).toBe(401);
    expect(await status(`Basic ${btoa(`admin:${token}`)}`)).toBe(401);
    expect(await status(`Bearer ${token}`)).toBe(200);
    expect(tinylb.stderr).not.toContain(token.slice("token-".length));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

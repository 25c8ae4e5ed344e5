/**
 * End-to-end tests of `dist/tinylb` with a FIFO, a symlink to /dev/zero or a folder where a
 * setting names a file: the config file, the admin token file and the probe token file. Each
 * must be rejected at once with an error naming the path and what it is, and a running
 * balancer must keep serving meanwhile.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestBackend } from "./support/backends.ts";
import { mkfifo } from "./support/fifo.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const directory = tempDirectory("tinylb-regular-file-e2e-");

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const FIFO = "it is a FIFO (named pipe), not a regular file; name a regular file or a symlink to one";
const DEVICE = "it is a character device, not a regular file; name a regular file or a symlink to one";
const FOLDER = "it is a folder, not a file";

/** Kinds of path that are no regular file: each makes one at `path` and names the error detail. */
const IRREGULAR: [string, (path: string) => void, string][] = [
  ["a FIFO", mkfifo, FIFO],
  ["a symlink to /dev/zero", (path) => symlinkSync("/dev/zero", path), DEVICE],
  ["a folder", (path) => mkdirSync(path), FOLDER],
];

/** Makes a path with `make` under a new name in the test folder, ending in `extension`, and returns it. */
function irregularPath(kind: string, make: (path: string) => void, extension = ""): string {
  const path = join(directory, `${kind.replaceAll(/\W+/g, "-")}-${Math.random().toString(36).slice(2, 8)}${extension}`);
  make(path);

  return path;
}

/** Puts a path made by `make` in place of `path` with one rename, as a save by rename does. */
function replaceWith(path: string, make: (path: string) => void): void {
  const next = `${path}.next`;
  make(next);
  renameSync(next, path);
}

/** Returns the resident set size of `pid` in KiB. */
function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));

  return Number(match![1]);
}

test.each(IRREGULAR)("check and start reject a config file that is %s", async (name, make, detail) => {
  const path = irregularPath(`config ${name}`, make, ".yaml");
  const message = `read config ${path} failed: ${detail}`;

  const check = await runTinylb(["check", "--config", path, "--admin", "off"]);
  const start = await runTinylb(["--config", path, "--admin", "off"]);

  expect(check.stderr).toContain(message);
  expect(check.exitCode).toBe(2);
  expect(start.stderr).toContain(message);
  expect(start.exitCode).toBe(2);
});

test("binary keeps serving when the config file turns into a FIFO, /dev/zero or a folder", async () => {
  const backend = TestBackend.echo("api-1");
  cleanup.push(() => backend.stop());
  const config = join(directory, "running.yaml");
  const admin = join(directory, "running-admin.sock");
  const good = `listen: 127.0.0.1:0\nbackends: [{ id: api-1, target: "${backend.target}" }]\n`;
  writeFileSync(config, good);
  await using tinylb = TinylbProcess.start(["--config", config, "--admin", `unix:${admin}`]);
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);
  const rssAtStart = rssKiB(tinylb.pid);

  // A file event reads the FIFO; SIGHUP reads /dev/zero and the folder.
  const cases: [string, (path: string) => void, string, "file event" | "SIGHUP"][] = [
    ["a FIFO", mkfifo, FIFO, "file event"],
    ["a symlink to /dev/zero", (path) => symlinkSync("/dev/zero", path), DEVICE, "SIGHUP"],
    ["a folder", (path) => mkdirSync(path), FOLDER, "SIGHUP"],
  ];
  for (const [name, make, detail, trigger] of cases) {
    rmSync(config, { recursive: true, force: true });
    replaceWith(config, make);
    if (trigger === "SIGHUP") {
      tinylb.signal("SIGHUP");
    }
    const reason = trigger === "SIGHUP" ? "SIGHUP" : '"file event"';
    await tinylb.waitForLog(`reason=${reason} err="read config ${config} failed: ${detail}"`);

    // The balancer still relays a new client, and its admin API still responds.
    expect(await greeting(port), `a client after the config became ${name}`).toBe("api-1\n");
    const health = await within("GET /healthz", fetch("http://localhost/healthz", { unix: admin, signal: AbortSignal.timeout(5000) } as RequestInit), 6000);
    expect(health.status, `GET /healthz after the config became ${name}`).toBe(200);
  }

  expect(tinylb.stderr).toContain("config reload rejected; keeping the last good backend set");
  // Reading /dev/zero would have grown RSS by gigabytes within seconds.
  expect(rssKiB(tinylb.pid) - rssAtStart).toBeLessThan(100 * 1024);

  // A good file is applied again.
  rmSync(config, { recursive: true, force: true });
  writeFileSync(config, good);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog('reason=SIGHUP count=1');
  expect(await tinylb.stop()).toBe(0);
}, 60_000);

/** Connects through the balancer on `port` and returns the greeting of the backend it reaches. */
async function greeting(port: number): Promise<string> {
  let text = "";
  const client = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_socket, chunk) => void (text += chunk.toString()) } });
  try {
    await waitFor("the backend's greeting", () => text.endsWith("\n"), 5000);
  } finally {
    client.end();
  }

  return text;
}

test.each(IRREGULAR)("check, start and status reject an admin token file that is %s", async (name, make, detail) => {
  const tokenFile = irregularPath(`admin token ${name}`, make);
  const admin = ["--admin", `unix:${join(directory, "token-admin.sock")}`, "--admin-token-file", tokenFile];
  const message = `read admin token file ${tokenFile} failed: ${detail}`;

  const check = await runTinylb(["check", "--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", ...admin]);
  const start = await runTinylb(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", ...admin]);
  const status = await runTinylb(["status", ...admin]);

  expect(check.stderr).toContain(message);
  expect(check.exitCode).toBe(2);
  expect(start.stderr).toContain(message);
  expect(start.exitCode).toBe(2);
  expect(status.stderr).toBe(`tinylb status: ${message}\n`);
  expect(status.exitCode).toBe(1);
});

test.each(IRREGULAR)("check and start reject a probe token file that is %s", async (name, make, detail) => {
  const tokenFile = irregularPath(`probe token ${name}`, make);
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "off", "--probe", "http", "--probe-token-file", tokenFile];
  const message = `invalid health settings: --probe-token-file: cannot read ${tokenFile}: ${detail}`;

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toContain(message);
  expect(check.exitCode).toBe(2);
  expect(start.stderr).toContain(message);
  expect(start.exitCode).toBe(2);
});

test("binary fails probes whose token file turns into a FIFO or /dev/zero", async () => {
  const token = "s3cret-probe-token";
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => new Response(null, { status: request.headers.get("authorization") === `Bearer ${token}` ? 200 : 401 }),
  });
  cleanup.push(() => server.stop(true));
  const tokenFile = join(directory, "probe-token");
  writeFileSync(tokenFile, `${token}\n`);
  const admin = join(directory, "probe-admin.sock");
  await using tinylb = TinylbProcess.start([
    "--listen", "127.0.0.1:0", "--admin", `unix:${admin}`, "--backend", `api-1=127.0.0.1:${server.port}`,
    "--probe", "http", "--probe-token-file", tokenFile, "--probe-interval", "100ms",
  ]);
  await tinylb.waitForLog("tinylb started");
  const rssAtStart = rssKiB(tinylb.pid);

  const cases: [string, (path: string) => void, string][] = [
    ["a FIFO", mkfifo, FIFO],
    ["a symlink to /dev/zero", (path) => symlinkSync("/dev/zero", path), DEVICE],
  ];
  for (const [index, [name, make, detail]] of cases.entries()) {
    replaceWith(tokenFile, make);
    const unhealthy = new RegExp(`backend is unhealthy .*backend=api-1 .*cause="http GET / failed 3 times in a row: read bearer token file ${tokenFile} failed: ${escape(detail)}"`);
    await tinylb.waitForLog(unhealthy, 10_000);
    const response = await fetch("http://localhost/v1/backends/api-1", { unix: admin, signal: AbortSignal.timeout(5000) } as RequestInit);
    expect(((await response.json()) as { healthy: boolean }).healthy, `health with a token file that is ${name}`).toBe(false);

    // A good token file makes the backend healthy again.
    replaceWith(tokenFile, (path) => writeFileSync(path, `${token}\n`));
    await waitFor(`healthy again after ${name}`, () => tinylb.stderr.split("INFO  backend is healthy ").length === index + 2);
  }

  // Reading /dev/zero would have grown RSS by gigabytes within seconds.
  expect(rssKiB(tinylb.pid) - rssAtStart).toBeLessThan(100 * 1024);
  expect(tinylb.stderr).not.toContain(token);
}, 60_000);

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

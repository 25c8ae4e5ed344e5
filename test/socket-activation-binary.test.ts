/**
 * dist/tinylb started by `systemd-socket-activate` (Debian package systemd), which listens on
 * the addresses of `-l`, then on the first connect replaces itself with tinylb and passes the
 * sockets as systemd does: fd 3 on, LISTEN_FDS, LISTEN_PID and, with `--fdname`, LISTEN_FDNAMES.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const activate = Bun.which("systemd-socket-activate");
if (activate === null) {
  console.warn("socket activation tests skipped: systemd-socket-activate is not installed (Debian package systemd)");
}

const workDir = tempDirectory("tinylb-activation-");
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/**
 * Starts tinylb under systemd-socket-activate with one `-l` per entry of `listen`, where `PORT`
 * stands for a random port from 20000 to 59999 on 127.0.0.1. A port in use is retried with
 * another, up to 5 times. Returns the process and the port.
 */
async function startActivated(listen: string[], args: (port: number) => string[], activateOptions: string[] = []): Promise<{ tinylb: TinylbProcess; port: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const listenOptions = listen.flatMap((address) => ["-l", address.replace("PORT", String(port))]);
    const tinylb = TinylbProcess.start(args(port), { command: [activate!, ...listenOptions, ...activateOptions, BINARY] });
    cleanup.push(() => tinylb[Symbol.asyncDispose]());
    await waitFor("systemd-socket-activate to listen or exit", () => tinylb.stderr.split("Listening on ").length > listen.length || tinylb.process.exitCode !== null);
    if (tinylb.process.exitCode === null) {
      return { tinylb, port };
    }
    if (!tinylb.stderr.includes("Address already in use")) {
      throw new Error(`systemd-socket-activate failed:\n${tinylb.stderr}`);
    }
  }
  throw new Error("systemd-socket-activate found no free port in 5 attempts");
}

function echoBackend(): TestBackend {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());

  return backend;
}

/** Connects, returns the backend's greeting and closes the client, so that a stop need not wait for it. */
async function greeting(where: number | string): Promise<string> {
  const client = await TestClient.connect(where);
  try {
    await waitFor("the backend's greeting", () => client.firstLine !== "");

    return client.firstLine;
  } finally {
    client.close();
  }
}

test.skipIf(activate === null)("passed TCP socket serves clients", async () => {
  const backend = echoBackend();
  const admin = join(workDir, "tcp-admin.sock");
  const { tinylb, port } = await startActivated(["127.0.0.1:PORT"], (port) => ["--listen", `127.0.0.1:${port}`, "--backend", `a=${backend.target}`, "--admin", `unix:${admin}`], ["--fdname", "web"]);

  // The first connect makes systemd-socket-activate start tinylb, which then accepts it.
  expect(await greeting(port)).toBe("a");
  await tinylb.waitForLog("tinylb started");
  expect(tinylb.stderr).toContain(`listening component=server listener=127.0.0.1:${port} inheritedFd=3 fdName=web`);
  expect(await greeting(port)).toBe("a");

  // Nothing binds the address, so no listen lock is taken.
  expect(readFileSync("/proc/net/unix", "utf8")).not.toContain(`@tinylb-listen:127.0.0.1:${port}`);

  const text = await runTinylb(["status", "--admin", `unix:${admin}`]);
  expect(text.stdout).toContain(`\nListeners: 127.0.0.1:${port} (socket from the service manager, fd 3 "web")\n`);
  const json = await runTinylb(["status", "--json", "--admin", `unix:${admin}`]);
  const status = JSON.parse(json.stdout) as { listeners: string[]; inheritedListeners?: unknown };
  expect(status.listeners).toEqual([`127.0.0.1:${port}`]);
  expect(status.inheritedListeners).toEqual([{ listener: `127.0.0.1:${port}`, fd: 3, fdName: "web" }]);

  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);

test.skipIf(activate === null)("passed socket and a bound one side by side", async () => {
  const backend = echoBackend();
  const { tinylb, port } = await startActivated(["127.0.0.1:PORT"], (port) => ["--listen", `127.0.0.1:${port}`, "--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`]);

  expect(await greeting(port)).toBe("a");
  await tinylb.waitForLog("tinylb started");
  const bound = Number(/listening component=server listener=127\.0\.0\.1:(\d+)\n/.exec(tinylb.stderr)?.[1]);
  expect(bound).toBeGreaterThan(0);
  expect(await greeting(bound)).toBe("a");
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);

test.skipIf(activate === null)("passed socket is shared by every worker", async () => {
  const backend = echoBackend();
  const { tinylb, port } = await startActivated(["127.0.0.1:PORT"], (port) => ["--listen", `127.0.0.1:${port}`, "--backend", `a=${backend.target}`, "--workers", "2", "--log-level", "debug"]);

  expect(await greeting(port)).toBe("a");
  await tinylb.waitForLog("tinylb started");
  expect(tinylb.stderr).toContain(`listening worker=1 component=server listener=127.0.0.1:${port} inheritedFd=3`);

  // Both threads wait in epoll on the same socket, so a burst of clients reaches both.
  const clients = await Promise.all(Array.from({ length: 40 }, () => TestClient.connect(port)));
  cleanup.push(() => clients.forEach((client) => client.close()));
  await waitFor("every greeting", () => clients.every((client) => client.firstLine === "a"));
  const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
  const inWorker = opened.filter((line) => line.includes("worker=1")).length;
  console.log(`41 clients: ${opened.length - inWorker} accepted by the main thread, ${inWorker} by the worker`);
  expect(opened.length).toBe(41);
  expect(inWorker).toBeGreaterThan(0);
  expect(inWorker).toBeLessThan(41);
  clients.forEach((client) => client.close());
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);

test.skipIf(activate === null)("passed Unix socket serves clients", async () => {
  const backend = echoBackend();
  const path = join(workDir, "lb.sock");
  const { tinylb } = await startActivated([path], () => ["--listen", `unix:${path}`, "--backend", `a=${backend.target}`]);

  expect(await greeting(path)).toBe("a");
  await tinylb.waitForLog("tinylb started");
  expect(tinylb.stderr).toContain(`listening component=server listener=unix:${path} inheritedFd=3`);
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);

test.skipIf(activate === null)("passed Unix socket matches another spelling", async () => {
  const backend = echoBackend();
  const link = join(workDir, "link");
  symlinkSync(workDir, link);
  for (const [name, listen] of [["linked.sock", join(link, "linked.sock")], ["slashes.sock", `${workDir}//slashes.sock`]]) {
    const path = join(workDir, name!);
    const { tinylb } = await startActivated([path], () => ["--listen", `unix:${listen}`, "--backend", `a=${backend.target}`, "--admin", "off"]);

    expect(await greeting(path)).toBe("a");
    await tinylb.waitForLog("tinylb started");
    expect(tinylb.stderr).toContain(`listening component=server listener=unix:${path} inheritedFd=3`);
    expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
  }
}, 60_000);

test.skipIf(activate === null)("passed socket names a host name listen address", async () => {
  const backend = echoBackend();
  const { tinylb, port } = await startActivated(["127.0.0.1:PORT"], (port) => ["--listen", `localhost:${port}`, "--backend", `a=${backend.target}`, "--admin", "off"]);

  await TestClient.connect(port).catch(() => undefined);
  expect(await within("tinylb to exit", tinylb.process.exited, 20_000)).toBe(2);
  expect(tinylb.stderr).toContain(
    `but no listen address is 127.0.0.1:${port} (localhost:${port} is a host name, and listen addresses are matched with passed sockets by IP address, so write 127.0.0.1:${port} in place of it); add it to listen`,
  );
}, 60_000);

test.skipIf(activate === null)("passed socket without a listen address exits 2", async () => {
  const backend = echoBackend();
  const { tinylb, port } = await startActivated(["127.0.0.1:PORT", "[::1]:PORT"], (port) => ["--listen", `127.0.0.1:${port}`, "--backend", `a=${backend.target}`]);

  // The connect starts tinylb, which exits without accepting it.
  await TestClient.connect(port).catch(() => undefined);
  expect(await within("tinylb to exit", tinylb.process.exited, 20_000)).toBe(2);
  expect(tinylb.stderr).toContain(
    `tinylb: the socket the service manager passed as fd 4 listens on [::1]:${port}, but no listen address is [::1]:${port}; add it to listen (--listen [::1]:${port}), or remove ListenStream=[::1]:${port} from the socket unit\n`,
  );
}, 60_000);

test.skipIf(activate === null)("reload that drops a passed socket needs a restart", async () => {
  const backend = echoBackend();
  const config = join(workDir, "reload.yaml");
  const { tinylb, port } = await startActivated(["127.0.0.1:PORT"], (port) => {
    writeFileSync(config, `listen: 127.0.0.1:${port}\nbackends:\n  - { id: a, target: "${backend.target}" }\n`);

    return ["--config", config, "--no-watch-config"];
  });
  expect(await greeting(port)).toBe("a");
  await tinylb.waitForLog("tinylb started");

  writeFileSync(config, `listen: 127.0.0.1:${port + 1}\nbackends:\n  - { id: a, target: "${backend.target}" }\n`);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("need a restart");
  expect(tinylb.stderr).toContain(`settings changed in the config file need a restart; the running values stay component=main file=${config} settings="listen=127.0.0.1:${port}->127.0.0.1:${port + 1}"`);
  expect(tinylb.stderr).toContain(
    `listen in the config file leaves out sockets that the service manager passes; edit their ListenStream= lines in the socket unit before the restart, or the restart fails component=main file=${config} passed=127.0.0.1:${port}`,
  );
  // The passed socket still serves.
  expect(await greeting(port)).toBe("a");
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);

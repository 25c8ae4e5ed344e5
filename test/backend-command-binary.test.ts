/**
 * `tinylb add` and `tinylb remove` through the compiled `dist/tinylb`, against a balancer
 * started from the same binary.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-backend-binary-");

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Connects a client and waits for the backend's greeting, its id. */
async function connectClient(port: number): Promise<TestClient> {
  const client = await TestClient.connect(port);
  cleanup.push(() => client.socket.terminate());
  await waitFor("a greeting", () => client.firstLine !== "" || client.ended || client.closed);

  return client;
}

test("binary adds and removes a backend", async () => {
  const adminPath = join(directory, "admin.sock");
  const admin = ["--admin", `unix:${adminPath}`];
  const [a, b] = ["a", "b"].map((id) => TestBackend.echo(id)) as [TestBackend, TestBackend];
  cleanup.push(() => [a, b].forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${a.target}`, ...admin, "--shutdown-grace", "1s"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  // Before the add, every client reaches a.
  const first = await connectClient(port);
  expect(first.firstLine).toBe("a");

  const added = await runTinylb(["add", "b", b.target, ...admin]);
  expect(added.stderr).toBe("");
  expect(added.stdout).toBe(`added backend "b" (${b.target})\n`);
  expect(added.exitCode).toBe(0);

  // Round-robin over a and b: two new clients reach one each.
  const pair = [await connectClient(port), await connectClient(port)];
  expect(pair.map((client) => client.firstLine).sort()).toEqual(["a", "b"]);
  const toB = pair.find((client) => client.firstLine === "b")!;
  const toA = pair.find((client) => client.firstLine === "a")!;
  toB.socket.write("to b\n");
  await waitFor("an echo through b", () => toB.received.includes("to b\n"));

  const status = await runTinylb(["status", "--json", ...admin]);
  expect(status.exitCode).toBe(0);
  const backends = (JSON.parse(status.stdout) as BalancerStatus).backends;
  expect(backends.map((backend) => [backend.id, backend.provider])).toEqual([["a", "static"], ["b", "api"]]);

  // Removing b resets its open connection (the default removal policy closes it at once) and keeps a's.
  const removed = await runTinylb(["remove", "b", ...admin]);
  expect(removed.stderr).toBe("");
  expect(removed.stdout).toBe(`removed backend "b" (${b.target})\n`);
  expect(removed.exitCode).toBe(0);
  await waitFor("b's client to be closed", () => toB.closed);
  expect((toB.closeError as { code?: string } | undefined)?.code).toBe("ECONNRESET");
  toA.socket.write("a stays\n");
  await waitFor("an echo through a", () => toA.received.includes("a stays\n"));
  expect((await connectClient(port)).firstLine).toBe("a");

  // b is gone, so a second removal finds nothing.
  const again = await runTinylb(["remove", "b", ...admin]);
  expect(again.stdout).toBe("");
  expect(again.stderr).toBe(`tinylb remove: the balancer on unix:${adminPath} responded with status 404: backend "b" not found\n`);
  expect(again.exitCode).toBe(1);

  expect(await tinylb.stop()).toBe(0);
});

/**
 * Starts a balancer whose config file `NAME.yaml` publishes backend a, with its admin socket
 * `NAME.sock`, and connects one client to a.
 */
async function startWithFileEntry(name: string): Promise<{ admin: string[]; a: TestBackend; configPath: string; tinylb: TinylbProcess; client: TestClient }> {
  const admin = ["--admin", `unix:${join(directory, `${name}.sock`)}`];
  const a = TestBackend.echo("a");
  cleanup.push(() => a.stop());
  const configPath = join(directory, `${name}.yaml`);
  writeFileSync(configPath, `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "${a.target}" }\n`);
  const tinylb = TinylbProcess.start(["--config", configPath, "--no-watch-config", ...admin, "--shutdown-grace", "1s"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const client = await connectClient(listenedPort(tinylb.stderr));

  return { admin, a, configPath, tinylb, client };
}

test("binary add names the serving file entry", async () => {
  const { admin, a, configPath, tinylb, client } = await startWithFileEntry("file-wins");
  const providerOfA = async (): Promise<string | undefined> => {
    const status = await runTinylb(["status", "--json", ...admin]);

    return (JSON.parse(status.stdout) as BalancerStatus).backends.find((backend) => backend.id === "a")?.provider;
  };

  // Step 1: the admin API stores a with the file's target, and the file's entry keeps serving.
  const added = await runTinylb(["add", "a", a.target, ...admin]);
  expect(added.stderr).toBe("");
  expect(added.stdout).toBe(`added backend "a" (${a.target}); provider "file" publishes "a" too and takes precedence, so its entry (${a.target}) serves\n`);
  expect(added.exitCode).toBe(0);
  expect(await providerOfA()).toBe("file");

  // Step 2: the file drops a, so the admin API's entry serves it, and its open connection stays.
  writeFileSync(configPath, "listen: 127.0.0.1:0\nbackends: []\n");
  tinylb.signal("SIGHUP");
  await waitFor("the admin API's entry to serve a", async () => (await providerOfA()) === "api");
  client.socket.write("still open\n");
  await waitFor("an echo through a", () => client.received.includes("still open\n"));
  expect(client.closed).toBe(false);

  expect(await tinylb.stop()).toBe(0);
});

test("binary remove names the serving file entry", async () => {
  const { admin, a, tinylb, client } = await startWithFileEntry("file-stays");
  expect((await runTinylb(["add", "a", a.target, ...admin])).exitCode).toBe(0);

  // The admin API's entry goes, and the file's entry keeps serving a with its open connection.
  const removed = await runTinylb(["remove", "a", ...admin]);
  expect(removed.stderr).toBe("");
  expect(removed.stdout).toBe(`removed the admin API's backend "a" (${a.target}); provider "file" still publishes "a", so its entry (${a.target}) keeps serving\n`);
  expect(removed.exitCode).toBe(0);
  const status = await runTinylb(["status", "--json", ...admin]);
  expect((JSON.parse(status.stdout) as BalancerStatus).backends.map((backend) => [backend.id, backend.provider])).toEqual([["a", "file"]]);
  client.socket.write("still open\n");
  await waitFor("an echo through a", () => client.received.includes("still open\n"));

  expect(await tinylb.stop()).toBe(0);
});

test("add without a balancer exits 1", async () => {
  const socket = join(directory, "none.sock");

  const result = await runTinylb(["add", "b", "127.0.0.1:9", "--admin", `unix:${socket}`]);

  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`tinylb add: no balancer responds on unix:${socket} (the socket does not exist); is tinylb running? Pass --admin ADDR for another address\n`);
  expect(result.exitCode).toBe(1);
});

test("binary remove of a file backend names the file", async () => {
  const adminPath = join(directory, "remove-file.sock");
  const admin = ["--admin", `unix:${adminPath}`];
  const a = TestBackend.echo("a");
  cleanup.push(() => a.stop());
  writeFileSync(join(directory, "remove-file.yaml"), `listen: 127.0.0.1:0\nbackends: [{ id: a, target: "${a.target}" }]\n`);
  // A relative --config path, which the message names as an absolute one.
  const tinylb = TinylbProcess.start(["--config", "remove-file.yaml", "--no-watch-config", ...admin], { cwd: directory });
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  const removed = await runTinylb(["remove", "a", ...admin]);
  expect(removed.stdout).toBe("");
  expect(removed.stderr).toBe(
    `tinylb remove: the balancer on unix:${adminPath} responded with status 409: backend "a" comes from provider "file"; only backends set through the admin API can be deleted here, so remove it from the config file ${join(directory, "remove-file.yaml")}, or stop its clients with tinylb disable a --close-connections\n`,
  );
  expect(removed.exitCode).toBe(1);
});

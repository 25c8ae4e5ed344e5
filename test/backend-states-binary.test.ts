import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Connections opened per step; SO_REUSEPORT hashes each to one of two threads. */
const CLIENTS = 24;

/** Connects `count` clients one after another, waits for each greeting, and returns the clients. */
async function connectClients(port: number, count: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = await TestClient.connect(port);
    clients.push(client);
    cleanup.push(() => client.socket.terminate());
    await waitFor("a greeting", () => client.firstLine !== "" || client.ended || client.closed);
  }

  return clients;
}

/** `connection opened` debug lines of `stderr` from the relay worker (worker=1) or the main thread. */
function openedLines(stderr: string, thread: "worker" | "main"): string[] {
  return stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("worker=1") === (thread === "worker"));
}

async function status(adminPath: string): Promise<BalancerStatus> {
  const result = await runTinylb(["status", "--json", "--admin", `unix:${adminPath}`]);
  expect(result.exitCode).toBe(0);

  return JSON.parse(result.stdout) as BalancerStatus;
}

test("--workers 2 honours disable and enable", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-disable-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const adminPath = join(dir, "admin.sock");
  const admin = ["--admin", `unix:${adminPath}`];
  const [a, b, c] = ["a", "b", "c"].map((id) => TestBackend.echo(id)) as [TestBackend, TestBackend, TestBackend];
  cleanup.push(() => [a, b, c].forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start([
    "--listen", "127.0.0.1:0",
    "--backend", `a=${a.target}`,
    "--backend", `b=${b.target}`,
    "--backend", `c=${c.target}`,
    "--probe", "tcp", "--probe-interval", "100ms",
    "--workers", "2", ...admin, "--log-level", "debug", "--shutdown-grace", "1s",
  ]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  // The threads share one rotation, so 24 clients reach each backend 8 times.
  const before = await connectClients(port, CLIENTS);
  const toB = before.filter((client) => client.firstLine === "b");
  expect(toB.length).toBe(CLIENTS / 3);

  // Disable b and close its connections, wherever they are.
  const disabled = await runTinylb(["disable", "b", "--close-connections", ...admin]);
  expect(disabled.stderr).toBe("");
  expect(disabled.stdout).toBe(`disabled backend "b" (${b.target}): it gets no new clients, and 8 connections opened for it were closed\n`);
  expect(disabled.exitCode).toBe(0);
  await waitFor("b's clients to be closed", () => toB.every((client) => client.ended || client.closed));
  const others = before.filter((client) => client.firstLine !== "b");
  for (const client of others) {
    client.socket.write("still here\n");
  }
  await waitFor("echoes through a and c", () => others.every((client) => client.received.includes("still here\n")));
  await tinylb.waitForLog(new RegExp(`backend disabled component=admin backend=b target=${b.target} state=disabled closed=8`));

  // New clients, accepted by both threads, never reach b.
  const mark = tinylb.stderr.length;
  const after = await connectClients(port, CLIENTS);
  expect(after.map((client) => client.firstLine)).not.toContain("b");
  expect(after.every((client) => client.firstLine === "a" || client.firstLine === "c")).toBe(true);
  // The test reads stderr from a pipe, so the lines may arrive a moment after the greetings.
  await waitFor("lines of clients opened in both threads", () => openedLines(tinylb.stderr.slice(mark), "worker").length > 0 && openedLines(tinylb.stderr.slice(mark), "main").length > 0);
  const whileDisabled = await status(adminPath);
  expect(whileDisabled.backends.map((backend) => [backend.id, backend.disabled])).toEqual([["a", false], ["b", true], ["c", false]]);

  // Enable b. The worker applies it when it reads the message, so wait until it sent a client to b.
  const enabled = await runTinylb(["enable", "b", ...admin]);
  expect(enabled.stdout).toBe(`enabled backend "b" (${b.target}): the rotation hands it out again\n`);
  expect(enabled.exitCode).toBe(0);
  const enabledAt = tinylb.stderr.length;
  const workerReachesB = (): boolean => openedLines(tinylb.stderr.slice(enabledAt), "worker").some((line) => line.includes(" backend=b "));
  for (let i = 0; i < 4 * CLIENTS && !workerReachesB(); i++) {
    await connectClients(port, 1);
  }
  expect(workerReachesB()).toBe(true);
  const cycle = await connectClients(port, 3);
  expect(cycle.map((client) => client.firstLine).sort()).toEqual(["a", "b", "c"]);

  // Probes of a disabled backend keep running, so its health stays visible.
  await runTinylb(["disable", "b", ...admin]);
  b.stop();
  await waitFor("status to show b unhealthy", async () => (await status(adminPath)).backends.find((backend) => backend.id === "b")?.health === "unhealthy", 10_000);
  expect((await status(adminPath)).backends.find((backend) => backend.id === "b")).toMatchObject({ disabled: true, healthy: false });

  expect(await tinylb.stop()).toBe(0);
});

test("disable without a balancer exits 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-disable-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "admin.sock");

  const result = await runTinylb(["disable", "a", "--admin", `unix:${socket}`]);

  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`tinylb disable: no balancer responds on unix:${socket} (the socket does not exist); is tinylb running? Pass --admin ADDR for another address\n`);
  expect(result.exitCode).toBe(1);
});

test("enable names the slow start it begins", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-enable-slow-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const adminPath = join(dir, "admin.sock");
  const admin = ["--admin", `unix:${adminPath}`];
  const [a, b] = ["a", "b"].map((id) => TestBackend.echo(id)) as [TestBackend, TestBackend];
  cleanup.push(() => [a, b].forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${a.target}`, "--backend", `b=${b.target}`, "--slow-start", "20s", ...admin, "--shutdown-grace", "0"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  expect((await runTinylb(["disable", "b", ...admin])).exitCode).toBe(0);

  const enabled = await runTinylb(["enable", "b", ...admin]);

  expect(enabled.stdout).toBe(`enabled backend "b" (${b.target}): the rotation hands it out again, with a slow start: its share of new clients grows from 10% to a full share over 20s\n`);
  expect(enabled.exitCode).toBe(0);
  const slowStartEndsInMs = (await status(adminPath)).backends.find((backend) => backend.id === "b")?.slowStartEndsInMs;
  expect(slowStartEndsInMs).toBeGreaterThan(10_000);
  expect(slowStartEndsInMs).toBeLessThanOrEqual(20_000);
});

test("add names the slow start it begins", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-add-slow-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const adminPath = join(dir, "admin.sock");
  const admin = ["--admin", `unix:${adminPath}`];
  const [a, b] = ["a", "b"].map((id) => TestBackend.echo(id)) as [TestBackend, TestBackend];
  cleanup.push(() => [a, b].forEach((backend) => backend.stop()));
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${a.target}`, "--slow-start", "20s", ...admin, "--shutdown-grace", "0"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  const added = await runTinylb(["add", "b", b.target, ...admin]);

  expect(added.stdout).toBe(`added backend "b" (${b.target}), with a slow start: its share of new clients grows from 10% to a full share over 20s\n`);
  expect(added.exitCode).toBe(0);
  // The same request again changes nothing and begins no slow start.
  expect((await runTinylb(["add", "b", b.target, ...admin])).stdout).toBe(`backend "b" dials ${b.target} already; nothing changed\n`);
});

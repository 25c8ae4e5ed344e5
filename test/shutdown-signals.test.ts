import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { HttpBackend } from "./support/http-backend.ts";
import { httpGet } from "./support/http-get.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

async function startTinylb(args: string[]): Promise<{ tinylb: TinylbProcess; port: number }> {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", ...args]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr) };
}

test("tinylb drains on SIGTERM and closes all on the second", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const { tinylb, port } = await startTinylb(["--backend", `a=${backend.target}`, "--shutdown-grace", "1m"]);
  const client = await TestClient.connect(port);
  cleanup.push(() => client.close());
  await waitFor("greeting", () => client.firstLine === "a");

  tinylb.signal("SIGTERM");
  await tinylb.waitForLog("SIGTERM received; draining");
  client.socket.write("during the drain\n");
  await waitFor("echo during the drain", () => client.received.includes("during the drain"));
  expect(await TestClient.connect(port).then(() => "accepted", () => "refused")).toBe("refused");
  expect(tinylb.process.exitCode).toBeNull();

  tinylb.signal("SIGTERM");
  await tinylb.waitForLog("SIGTERM received again; closed every connection");
  await waitFor("client to see the end", () => client.ended || client.closed);
  expect(await within("tinylb to exit", tinylb.process.exited, 10_000)).toBe(0);
  expect(tinylb.stderr).toMatch(/SIGTERM received again; closed every connection .*closed=1/);
});

test("status shows the shutdown deadline", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const dir = mkdtempSync(join(tmpdir(), "tinylb-shutdown-status-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const admin = `unix:${join(dir, "admin.sock")}`;
  const { tinylb, port } = await startTinylb(["--backend", `a=${backend.target}`, "--shutdown-grace", "1m", "--admin", admin]);
  const client = await TestClient.connect(port);
  cleanup.push(() => client.close());
  await waitFor("greeting", () => client.firstLine === "a");
  expect(await status(admin)).not.toContain("Shutting down");

  tinylb.signal("SIGTERM");
  await tinylb.waitForLog("SIGTERM received; draining");
  const text = await status(admin);
  expect(text).toMatch(/^a\s+127\.0\.0\.1:\d+\s+static\s+1\s/m);
  expect(text).toContain("\nListeners: (none)\n");
  expect(text).toMatch(/^Shutting down: no new clients are accepted; the connections still open are closed in (1m|59s|58s)$/m);

  client.close();
  expect(await within("tinylb to exit", tinylb.process.exited, 10_000)).toBe(0);
});

test("status shows a relay worker's shutdown deadline", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const dir = mkdtempSync(join(tmpdir(), "tinylb-shutdown-status-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const admin = `unix:${join(dir, "admin.sock")}`;
  const flags = ["--backend", `a=${backend.target}`, "--shutdown-grace", "1m", "--admin", admin, "--workers", "2", "--log-level", "debug"];
  const { tinylb, port } = await startTinylb(flags);

  // SO_REUSEPORT hashes each client to a thread, so keep the first client the worker accepts and close the rest.
  const clients = await connectUntilWorkerAccepts(tinylb, port);
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
  const onWorker = clients.pop() as TestClient;
  clients.forEach((client) => client.close());
  await waitFor("one open connection", async () => (await status(admin)).includes("Connections: 1 open"), 10_000);

  tinylb.signal("SIGTERM");
  await tinylb.waitForLog("SIGTERM received; draining");
  expect(tinylb.stderr).not.toMatch(/waiting for open connections to finish component=server/);
  expect(await status(admin)).toMatch(/^Shutting down: no new clients are accepted; the connections still open are closed in (1m|59s|58s)$/m);
  const json = JSON.parse(await status(admin, ["--json"])) as { shutdownEndsInMs?: number };
  expect(json.shutdownEndsInMs).toBeGreaterThan(50_000);

  onWorker.close();
  expect(await within("tinylb to exit", tinylb.process.exited, 10_000)).toBe(0);
});

/** Connects clients one at a time until the relay worker logs one as opened; the last client returned is that one. */
async function connectUntilWorkerAccepts(tinylb: TinylbProcess, port: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = 0; i < 40; i++) {
    const client = await TestClient.connect(port);
    clients.push(client);
    await waitFor("greeting", () => client.firstLine === "a");
    const opened = new RegExp(`connection opened .*client=127\\.0\\.0\\.1:${client.socket.localPort}\\b.*`);
    await tinylb.waitForLog(opened);
    if (/worker=1\b/.test(opened.exec(tinylb.stderr)?.[0] ?? "")) {
      return clients;
    }
  }
  throw new Error("no client of 40 reached the relay worker");
}

async function status(admin: string, flags: string[] = []): Promise<string> {
  const child = Bun.spawn([BINARY, "status", "--admin", admin, ...flags], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });

  return stdout;
}

test("tinylb probes the backends of its config file", async () => {
  const [a, b, c] = ["a", "b", "c"].map((id) => new HttpBackend(id)) as [HttpBackend, HttpBackend, HttpBackend];
  cleanup.push(() => [a, b, c].forEach((backend) => backend.stop()));
  a.readyStatus = 503;
  c.readyStatus = 503;
  const dir = mkdtempSync(join(tmpdir(), "tinylb-health-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "tinylb.yaml");
  // c fails /readyz too, but its own probe requests /livez, which passes.
  writeFileSync(
    config,
    [
      "probe:",
      "  kind: http",
      "  path: /readyz",
      "  interval: 1s",
      "  timeout: 1s",
      "  rise: 1",
      "  fall: 1",
      "backends:",
      `  - { id: a, target: "${a.target}" }`,
      `  - { id: b, target: "${b.target}" }`,
      `  - { id: c, target: "${c.target}", probe: { path: /livez } }`,
    ].join("\n"),
  );
  const { tinylb, port } = await startTinylb(["--config", config]);

  await tinylb.waitForLog(/backend is unhealthy .*backend=a .*cause="http GET \/readyz failed: GET \/readyz returned status 503, expected 200"/);
  const bodies: string[] = [];
  for (let i = 0; i < 6; i++) {
    bodies.push(await httpGet(port));
  }

  expect(bodies.sort()).toEqual(["b", "b", "b", "c", "c", "c"]);
  expect(tinylb.stderr).not.toMatch(/backend is unhealthy .*backend=c/);
});

test("tinylb rejects a bad probe flag", async () => {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--probe", "udp"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());

  expect(await within("tinylb to exit", tinylb.process.exited, 10_000)).toBe(2);
  expect(tinylb.stderr).toContain('--probe "udp" is not valid; use one of tcp, http, https');
});

test("tinylb exits 0 on a SIGTERM sent the moment it logs its start", async () => {
  // The start line is the signal a supervisor or test waits for, so the SIGTERM handler
  // must be in place before it is written. Without a handler, SIGTERM ends the process with
  // status 143. The window is short, so the race is run several times.
  for (let round = 0; round < 10; round++) {
    const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0"]);
    cleanup.push(() => tinylb[Symbol.asyncDispose]());
    await tinylb.waitForLog("tinylb started", 20_000);

    expect(await within("tinylb to exit", tinylb.stop(), 20_000)).toBe(0);
  }
}, 120_000);

import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { Dnsmasq, dnsmasqInstalled } from "./support/dnsmasq.ts";
import { EtcdCluster, etcdctl } from "./support/etcd-cluster.ts";
import { SETTLE_MS } from "../src/providers/save-settle.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

/** Per-test deadline: each test starts the binary, some twice, beside dnsmasq. */
const E2E_TIMEOUT_MS = 60_000;

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-providers-e2e-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

function startBackends(ids: string[]): Map<string, TestBackend> {
  const backends = new Map(ids.map((id) => [id, TestBackend.echo(id)]));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

/**
 * Starts echo backends for `ids` in a new folder, and returns them with the path of a config
 * file there, a function that writes the YAML `backends` list of some of them, and an admin
 * socket path.
 */
function configFixture(ids: string[]): { backends: Map<string, TestBackend>; config: string; socket: string; yaml: (ids: string[]) => string } {
  const backends = startBackends(ids);
  const dir = tempDir();
  const yaml = (listed: string[]): string => `backends:\n${listed.map((id) => `  - { id: ${id}, target: "${backends.get(id)!.target}" }`).join("\n")}\n`;

  return { backends, config: join(dir, "tinylb.yaml"), socket: join(dir, "admin.sock"), yaml };
}

async function startTinylb(args: string[]): Promise<{ tinylb: TinylbProcess; port: number }> {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--log-level", "debug", "--shutdown-grace", "0", ...args]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr) };
}

/** Connects clients until one greets with each id; returns them by id. */
async function connectEach(port: number, ids: string[]): Promise<Map<string, TestClient>> {
  const byId = new Map<string, TestClient>();
  for (let attempt = 0; attempt < ids.length * 4 && byId.size < ids.length; attempt++) {
    const client = await TestClient.connect(port);
    cleanup.push(() => client.close());
    await waitFor("greeting", () => client.firstLine !== "" || client.closed);
    if (ids.includes(client.firstLine) && !byId.has(client.firstLine)) {
      byId.set(client.firstLine, client);
    }
  }
  expect([...byId.keys()].sort()).toEqual([...ids].sort());

  return byId;
}

async function runStatus(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([BINARY, "status", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);

  return { code, stdout, stderr };
}

function adminFetch(socket: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://localhost${path}`, { ...init, unix: socket } as RequestInit);
}

test("binary status prints backends and listeners", async () => {
  const backends = startBackends(["a", "b"]);
  const socket = join(tempDir(), "admin.sock");
  const { port } = await startTinylb(["--admin", `unix:${socket}`, "--backend", `a=${backends.get("a")!.target}`, "--backend", `b=${backends.get("b")!.target}`]);
  const clients = await connectEach(port, ["a"]);
  await BalancerScenario.echo(clients.get("a")!, "ping");

  const table = await runStatus(["--admin", `unix:${socket}`]);
  const json = await runStatus(["--admin", `unix:${socket}`, "--json"]);

  expect(table.code).toBe(0);
  // The process header (two lines and a blank one) comes before the table.
  const lines = table.stdout.split("\n").slice(3);
  expect(table.stdout).toContain("\nConfig file: none\n\n");
  expect(lines[0]).toMatch(/^ID\s+TARGET\s+PROVIDER\s+ACTIVE\s+TOTAL\s+BYTES TO BACKEND\s+BYTES TO CLIENT\s+HEALTH\s+STATE$/);
  expect(lines[1]).toMatch(new RegExp(`^a\\s+${backends.get("a")!.target}\\s+static\\s+1\\s+1\\s+5\\s+7\\s+healthy \\(no probe\\)\\s+enabled$`));
  expect(lines[2]).toMatch(new RegExp(`^b\\s+${backends.get("b")!.target}\\s+static\\s+0\\s+0\\s+0\\s+0\\s+healthy \\(no probe\\)\\s+enabled$`));
  expect(table.stdout).toContain(`Listeners: 127.0.0.1:${port}\n`);
  expect(json.code).toBe(0);
  const status = JSON.parse(json.stdout) as { listeners: string[]; backends: { id: string; active: number }[] };
  expect(status.listeners).toEqual([`127.0.0.1:${port}`]);
  expect(status.backends.map((backend) => [backend.id, backend.active])).toEqual([
    ["a", 1],
    ["b", 0],
  ]);
}, E2E_TIMEOUT_MS);

test("binary status without a balancer fails in one line", async () => {
  const socket = join(tempDir(), "nothing.sock");

  const result = await runStatus(["--admin", `unix:${socket}`]);

  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr.trim().split("\n").length).toBe(1);
  expect(result.stderr).toContain(`tinylb status: no balancer responds on unix:${socket}`);
}, E2E_TIMEOUT_MS);

test("binary status shows process and last reload", async () => {
  const { config, socket, yaml } = configFixture(["a"]);
  writeFileSync(config, yaml(["a"]));
  const { tinylb } = await startTinylb(["--config", config, "--admin", `unix:${socket}`]);

  const before = await runStatus(["--admin", `unix:${socket}`]);
  expect(before.code).toBe(0);
  const [running, configLine] = before.stdout.split("\n");
  expect(running).toMatch(new RegExp(`^tinylb \\S+ \\(commit \\S+\\), pid ${tinylb.pid}, up \\d+s since \\d{4}-\\d\\d-\\d\\dT`));
  expect(configLine).toBe(`Config file: ${config}; not reloaded since start`);

  writeFileSync(config, `bogusKey: 1\n${yaml(["a"])}`);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/config reload rejected; .*reason=SIGHUP/);
  const after = await runStatus(["--admin", `unix:${socket}`]);
  expect(after.stdout.split("\n")[1]).toMatch(/^Config file: .*; last reload \S+Z \(SIGHUP\) rejected, so the last good config keeps serving: .*bogusKey/);

  const json = JSON.parse((await runStatus(["--admin", `unix:${socket}`, "--json"])).stdout) as BalancerStatus;
  expect(json.process?.pid).toBe(tinylb.pid);
  expect(json.process?.configFile).toBe(config);
  expect(json.process?.lastReload?.result).toBe("rejected");
  expect(json.process?.lastReload?.reason).toBe("SIGHUP");
  expect(json.process?.lastReload?.error).toContain("bogusKey");
  expect(await tinylb.stop()).toBe(0);
}, E2E_TIMEOUT_MS);

test("binary counts a settled save once", async () => {
  const { config, socket, yaml } = configFixture(["a", "b"]);
  const dir = dirname(config);
  writeFileSync(config, yaml(["a", "b"]));
  const { tinylb } = await startTinylb(["--config", config, "--admin", `unix:${socket}`]);

  writeFileSync(join(dir, "tinylb.yaml.new"), yaml(["a"]));
  renameSync(join(dir, "tinylb.yaml.new"), config);

  await tinylb.waitForLog(/config reloaded .*reason=settled/, SETTLE_MS + 10_000);
  const metrics = await (await adminFetch(socket, "/metrics")).text();
  expect(metrics).toContain("tinylb_config_reloads_total 1\n");
  expect(metrics).toContain("tinylb_config_reload_failures_total 0\n");
  expect(await tinylb.stop()).toBe(0);
}, E2E_TIMEOUT_MS);

test("binary applies a watched config file and SIGHUP", async () => {
  const { config, socket, yaml } = configFixture(["a", "b"]);
  const dir = dirname(config);
  writeFileSync(config, yaml(["a"]));
  const { tinylb, port } = await startTinylb(["--config", config, "--admin", `unix:${socket}`]);
  const clients = await connectEach(port, ["a"]);

  writeFileSync(join(dir, "tinylb.yaml.new"), yaml(["a", "b"]));
  renameSync(join(dir, "tinylb.yaml.new"), config);

  await tinylb.waitForLog(/backend set changed .*provider=file .*count=2/);
  await connectEach(port, ["b"]);
  await BalancerScenario.echo(clients.get("a")!, "a undisturbed");

  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/config reloaded .*reason=SIGHUP/);
  const metrics = await (await adminFetch(socket, "/metrics")).text();
  expect(metrics).toContain("tinylb_config_reloads_total 2\n");
  expect(metrics).toContain("tinylb_config_reload_failures_total 0\n");
  expect(await tinylb.stop()).toBe(0);
}, E2E_TIMEOUT_MS);

test("binary keeps backends through a paused tee write", async () => {
  const backends = startBackends(["a", "b", "c"]);
  const dir = tempDir();
  const config = join(dir, "tinylb.yaml");
  const entries = ["a", "b", "c"].map((id) => `  - { id: ${id}, target: "${backends.get(id)!.target}" }\n`);
  writeFileSync(config, `backends:\n${entries.join("")}`);
  const { tinylb, port } = await startTinylb(["--config", config]);
  const clients = await connectEach(port, ["a", "b", "c"]);

  // As `tool | tee lb.yaml` with a tool that pauses after a: tee truncates the file, writes
  // what it gets, and the rest arrives 500 ms later, after the 200 ms quiet period.
  const writer = Bun.spawn(["sh", "-c", '{ printf %s "$1"; sleep 0.5; printf %s "$2"; } | tee "$3" > /dev/null', "sh", `backends:\n${entries[0]}`, entries[1]! + entries[2]!, config]);
  expect(await writer.exited).toBe(0);
  await tinylb.waitForLog("config file removes or retargets backends; applying it in 1 s unless it changes again");
  // The settle time of the cut file passes, and a slow timer gets a margin of 500 ms.
  await Bun.sleep(SETTLE_MS + 500);

  expect(tinylb.stderr.match(/backend set changed/g)).toHaveLength(1);
  for (const [id, client] of clients) {
    await BalancerScenario.echo(client, `${id} undisturbed`);
    expect(client.closed).toBe(false);
  }
}, E2E_TIMEOUT_MS);

test("binary logs one line for a SIGHUP burst", async () => {
  const { config, socket, yaml } = configFixture(["a", "b"]);
  writeFileSync(config, yaml(["a"]));
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--config", config, "--no-watch-config", "--admin", `unix:${socket}`]);
  await tinylb.waitForLog("tinylb started");

  for (let signal = 0; signal < 300; signal++) {
    tinylb.signal("SIGHUP");
  }
  await waitFor("a burst reload", async () => /tinylb_config_reloads_total [1-9]/.test(await (await adminFetch(socket, "/metrics")).text()));
  writeFileSync(config, yaml(["a", "b"]));
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/INFO {2}config reloaded .*reason=SIGHUP count=2/);

  const reloadLines = tinylb.stderr.split("\n").filter((line) => line.includes("config reloaded"));
  expect(reloadLines).toHaveLength(2);
  expect(reloadLines[0]).toContain("reason=SIGHUP count=1 changed=false");
  expect(reloadLines[1]).not.toContain("changed=false");
  const metrics = await (await adminFetch(socket, "/metrics")).text();
  expect(metrics).toContain("tinylb_config_reload_failures_total 0\n");
}, E2E_TIMEOUT_MS);

test("binary admin API changes the set", async () => {
  const backends = startBackends(["b"]);
  const socket = join(tempDir(), "admin.sock");
  const { tinylb, port } = await startTinylb(["--admin", `unix:${socket}`]);
  expect(statSync(socket).mode & 0o777).toBe(0o600);

  const put = await adminFetch(socket, "/v1/backends/b", { method: "PUT", body: JSON.stringify({ target: backends.get("b")!.target }) });
  expect(put.status).toBe(201);
  const clients = await connectEach(port, ["b"]);
  const status = await runStatus(["--admin", `unix:${socket}`]);
  expect(status.stdout).toMatch(/\nb\s+\S+\s+api\s+1\s+1/);

  const deleted = await adminFetch(socket, "/v1/backends/b", { method: "DELETE" });
  expect(deleted.status).toBe(200);
  await waitFor("client of b to close", () => clients.get("b")!.closed);

  expect(await tinylb.stop()).toBe(0);
  expect(existsSync(socket)).toBe(false);
}, E2E_TIMEOUT_MS);

test("binary refuses a public admin address", async () => {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "0.0.0.0:0"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());

  expect(await tinylb.process.exited).toBe(2);
  expect(tinylb.stderr).toContain("admin API address 0.0.0.0:0 rejected: it is not a loopback address");
  expect(tinylb.stderr).not.toContain("listening");
}, E2E_TIMEOUT_MS);

const dnsTest = dnsmasqInstalled() ? test : test.skip;

/** Starts a backend on `host` that greets with `id` and echoes; returns its port. */
function startBackendOn(host: string, id: string): number {
  const listener = Bun.listen({
    hostname: host,
    port: 0,
    socket: {
      open: (socket) => void socket.write(`${id}\n`),
      data: (socket, chunk) => void socket.write(chunk),
    },
  });
  cleanup.push(() => listener.stop(true));

  return listener.port;
}

dnsTest("binary follows DNS answers", async () => {
  const port2 = startBackendOn("127.0.0.2", "dns-a");
  const dns = await Dnsmasq.start([`127.0.0.2 api.cluster.test`]);
  cleanup.push(() => dns.stop());
  const { tinylb, port } = await startTinylb(["--admin", "off", "--dns", `api.cluster.test:${port2}`, "--dns-resolver", dns.server, "--dns-interval", "1s"]);

  await tinylb.waitForLog(/backend set changed .*provider=dns:api.cluster.test/);
  const clients = await connectEach(port, ["dns-a"]);

  await dns.setHosts([]);
  await tinylb.waitForLog("DNS lookup failed; keeping the last answer");
  await BalancerScenario.echo(clients.get("dns-a")!, "served from the last answer");
  await connectEach(port, ["dns-a"]);
}, E2E_TIMEOUT_MS);

dnsTest("binary reports a failing DNS provider", async () => {
  const port2 = startBackendOn("127.0.0.2", "dns-a");
  const dns = await Dnsmasq.start([`127.0.0.2 api.cluster.test`]);
  cleanup.push(() => dns.stop());
  const socket = join(tempDir(), "admin.sock");
  const { tinylb } = await startTinylb(["--admin", `unix:${socket}`, "--dns", `api.cluster.test:${port2}`, "--dns-resolver", dns.server, "--dns-interval", "1s"]);
  const provider = `dns:api.cluster.test:${port2}`;
  const metrics = async (): Promise<string> => (await adminFetch(socket, "/metrics")).text();
  await tinylb.waitForLog(/backend set changed .*provider=dns:api.cluster.test/);
  expect(await metrics()).toContain(`tinylb_provider_up{provider="${provider}"} 1\n`);
  expect(await metrics()).toContain(`tinylb_provider_failures_total{provider="${provider}"} 0\n`);

  await dns.setHosts([]);
  await tinylb.waitForLog("DNS lookup failed; keeping the last answer");

  const table = await runStatus(["--admin", `unix:${socket}`]);
  expect(table.stdout).toContain(`Provider failing: "${provider}" has failed for `);
  expect(table.stdout).toMatch(/keeps its last set of 1: .+\n/);
  const json = JSON.parse((await runStatus(["--admin", `unix:${socket}`, "--json"])).stdout) as { providers: { name: string; failing?: boolean; failures?: number; lastError?: string }[] };
  const entry = json.providers.find((candidate) => candidate.name === provider)!;
  expect(entry.failing).toBe(true);
  expect(entry.failures).toBeGreaterThanOrEqual(1);
  expect(entry.lastError).toBeString();
  expect(await metrics()).toContain(`tinylb_provider_up{provider="${provider}"} 0\n`);

  await dns.setHosts([`127.0.0.2 api.cluster.test`]);
  await tinylb.waitForLog("DNS lookup recovered");
  expect(await metrics()).toContain(`tinylb_provider_up{provider="${provider}"} 1\n`);
  expect((await runStatus(["--admin", `unix:${socket}`])).stdout).not.toContain("Provider failing");
}, E2E_TIMEOUT_MS);

dnsTest("binary restart serves the saved set while providers are unreachable", async () => {
  const dnsPort = startBackendOn("127.0.0.2", "from-dns");
  const apiBackend = startBackends(["from-api"]).get("from-api")!;
  const dir = tempDir();
  const socket = join(dir, "admin.sock");
  const stateFile = join(dir, "state.json");
  const dns = await Dnsmasq.start([`127.0.0.2 api.cluster.test`]);
  cleanup.push(() => dns.stop());
  const args = ["--admin", `unix:${socket}`, "--state-file", stateFile, "--dns", `api.cluster.test:${dnsPort}`, "--dns-resolver", dns.server, "--dns-interval", "1s"];

  const first = await startTinylb(args);
  await first.tinylb.waitForLog(/backend set changed .*provider=dns:api.cluster.test/);
  await adminFetch(socket, "/v1/backends/from-api", { method: "PUT", body: JSON.stringify({ target: apiBackend.target }) });
  await waitFor("state file with both backends", () => existsSync(stateFile) && readFileSync(stateFile, "utf8").includes("from-api"));
  expect(await first.tinylb.stop()).toBe(0);
  await dns.stop();

  const second = await startTinylb(args);

  await connectEach(second.port, ["from-dns", "from-api"]);
  // The resolver gives up after two tries of its 5 s query timeout.
  await second.tinylb.waitForLog("DNS lookup failed; the name's backends stay as they are until a lookup succeeds", 30_000);
  const status = await runStatus(["--admin", `unix:${socket}`, "--json"]);
  const backends = (JSON.parse(status.stdout) as { backends: { id: string; provider: string }[] }).backends;
  expect(backends.map((backend) => `${backend.id} from ${backend.provider}`)).toEqual([
    "api.cluster.test@127.0.0.2 from dns:api.cluster.test:" + dnsPort,
    "from-api from api",
  ]);
}, E2E_TIMEOUT_MS);

test("binary shows an etcd provider that keeps its last set", async () => {
  const { backends, config, socket } = configFixture(["e1"]);
  const cluster = await EtcdCluster.start(1);
  cleanup.push(() => cluster.stop());
  const etcd = cluster.members[0]!.clientUrl;
  const prefix = "/e2e/backends/";
  const provider = `etcd:${prefix}`;
  await etcdctl(etcd, ["put", `${prefix}e1`, backends.get("e1")!.target]);
  writeFileSync(config, `etcd:\n  endpoints: [ "${etcd}" ]\n  prefix: ${prefix}\n`);
  const { tinylb } = await startTinylb(["--config", config, "--admin", `unix:${socket}`]);
  const metrics = async (): Promise<string> => (await adminFetch(socket, "/metrics")).text();
  await tinylb.waitForLog(/backend set changed .*provider=etcd:/);
  expect(await metrics()).toContain(`tinylb_provider_stale{provider="${provider}"} 0\n`);

  // The prefix is emptied: the provider keeps e1 and marks it stale in status, the API and /metrics.
  const emptiedAt = Date.now();
  await etcdctl(etcd, ["del", `${prefix}e1`]);
  await tinylb.waitForLog("no valid backend under the etcd prefix; keeping the last backend set");

  const table = await runStatus(["--admin", `unix:${socket}`]);
  expect(table.stdout).toMatch(new RegExp(`Provider stale: "${provider}" keeps its last set of 1 since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z: no valid backend under the etcd prefix\n`));
  const status = (await (await adminFetch(socket, "/v1/backends")).json()) as BalancerStatus;
  const entry = status.providers.find((candidate) => candidate.name === provider)!;
  expect(entry.stale).toBe(true);
  expect(entry.staleReason).toBe("no valid backend under the etcd prefix");
  expect(Date.parse(entry.staleSince!)).toBeGreaterThanOrEqual(emptiedAt - 1000);
  expect(entry.failing).toBe(false);
  expect(entry.backends).toBe(1);
  expect(await metrics()).toContain(`tinylb_provider_stale{provider="${provider}"} 1\n`);
  expect(await metrics()).toContain(`tinylb_provider_up{provider="${provider}"} 1\n`);

  // A key comes back: the provider follows etcd again.
  await etcdctl(etcd, ["put", `${prefix}e1`, backends.get("e1")!.target]);
  await waitFor("the stale mark to clear", async () => (await metrics()).includes(`tinylb_provider_stale{provider="${provider}"} 0\n`));
  expect((await runStatus(["--admin", `unix:${socket}`])).stdout).not.toContain("Provider stale");
}, E2E_TIMEOUT_MS);

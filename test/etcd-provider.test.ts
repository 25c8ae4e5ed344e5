import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { Logger } from "../src/logger.ts";
import { type EtcdTls, prefixRangeEnd } from "../src/providers/etcd-gateway.ts";
import { EtcdProvider, type EtcdProviderOptions } from "../src/providers/etcd-provider.ts";
import { Server } from "../src/server.ts";
import { EtcdCluster, etcdctl } from "./support/etcd-cluster.ts";
import { retryDelays } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

// These tests run a real single-member etcd (Debian's etcd-server) on a loopback address.
// Where a test needs to cut the provider's watch, the provider reaches etcd through an
// in-process tinylb server, and the test removes etcd from that server's backend set.

let cluster: EtcdCluster;
let endpoint: string;
let prefixCounter = 0;

beforeAll(async () => {
  cluster = await EtcdCluster.start(1);
  endpoint = cluster.members[0]!.clientUrl;
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
}, 20_000);

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Returns a prefix no other test uses, so tests share the member without seeing each other's keys. */
function freshPrefix(): string {
  prefixCounter++;

  return `/tinylb-test-${prefixCounter}/backends/`;
}

async function put(key: string, value: string): Promise<void> {
  await etcdctl(endpoint, ["put", key, value]);
}

async function del(key: string): Promise<void> {
  await etcdctl(endpoint, ["del", key]);
}

/** Starts a provider on `endpoints` and records what it publishes and logs. */
function startProvider(
  prefix: string,
  endpoints: string[],
  tls?: EtcdTls,
  watchIdleTimeoutMs?: number,
  stableWatchMs = 500,
): { provider: EtcdProvider; sets: BackendSet[]; logs: string[] } {
  return startProviderWith({ endpoints, prefix, tls, watchIdleTimeoutMs, stableWatchMs });
}

/** Starts a provider with `options` and a short back-off, and records what it publishes and logs. */
function startProviderWith(options: Omit<EtcdProviderOptions, "logger">): { provider: EtcdProvider; sets: BackendSet[]; logs: string[] } {
  const sets: BackendSet[] = [];
  const logs: string[] = [];
  const logger = new Logger({ level: "debug", sink: (line) => logs.push(line) });
  const provider = new EtcdProvider({ backoff: { initialMs: 50, maxMs: 500 }, stableWatchMs: 500, ...options, logger });
  provider.start((set) => sets.push(set));
  cleanup.push(() => provider.stop());

  return { provider, sets, logs };
}

function latest(sets: BackendSet[]): string {
  return sets.at(-1)?.describe() ?? "(nothing published)";
}

/** Starts an in-process tinylb server in front of the etcd member; returns it and its URL. */
async function startRelay(): Promise<{ server: Server; url: string; etcdSet: BackendSet }> {
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  const etcdSet = new BackendSet([createBackend("etcd-1", cluster.members[0]!.clientAddress)]);
  server.applySet(etcdSet);
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, url: `http://127.0.0.1:${address.kind === "tcp" ? address.port : 0}`, etcdSet };
}

function count(logs: string[], text: string): number {
  return logs.filter((line) => line.includes(text)).length;
}

test.each([
  ["/a/", "/a0"],
  ["abc", "abd"],
])("prefixRangeEnd of %p is %p", (prefix, end) => {
  expect(prefixRangeEnd(Buffer.from(prefix)).toString()).toBe(end);
});

test("prefixRangeEnd skips trailing 0xff bytes", () => {
  expect([...prefixRangeEnd(Buffer.from([0x61, 0xff, 0xff]))]).toEqual([0x62]);
  expect([...prefixRangeEnd(Buffer.from([0xff]))]).toEqual([0]);
});

test("EtcdProvider publishes the prefix and follows puts and deletes", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}api-1`, "10.0.0.11:6443");
  await put(`${prefix}api-2`, "10.0.0.12:6443");
  await put(`${prefix.slice(0, -1)}-other/api-9`, "10.0.0.19:6443");
  const { sets } = startProvider(prefix, [endpoint]);

  await waitFor("the first set", () => sets.length > 0);
  expect(latest(sets)).toBe("api-1=10.0.0.11:6443,api-2=10.0.0.12:6443");

  await put(`${prefix}api-3`, "[fd00::13]:6443");
  await waitFor("api-3 added", () => latest(sets).includes("api-3"));
  expect(latest(sets)).toBe("api-1=10.0.0.11:6443,api-2=10.0.0.12:6443,api-3=[fd00::13]:6443");

  await put(`${prefix}api-1`, "10.0.0.21:6443");
  await waitFor("api-1 retargeted", () => latest(sets).includes("10.0.0.21"));
  expect(latest(sets)).toBe("api-1=10.0.0.21:6443,api-2=10.0.0.12:6443,api-3=[fd00::13]:6443");

  await del(`${prefix}api-2`);
  await waitFor("api-2 removed", () => !latest(sets).includes("api-2"));
  expect(latest(sets)).toBe("api-1=10.0.0.21:6443,api-3=[fd00::13]:6443");
});

test("EtcdProvider skips invalid keys and values", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}good`, "10.0.0.1:443");
  await put(`${prefix}nested/key`, "10.0.0.2:443");
  await put(`${prefix}bad-target`, "not an address");
  await put(`${prefix}long-unix`, `unix:/tmp/${"a".repeat(110)}.sock`);
  const { sets, logs } = startProvider(prefix, [endpoint]);

  await waitFor("the first set", () => sets.length > 0);
  expect(latest(sets)).toBe("good=10.0.0.1:443");
  expect(count(logs, "skipping an etcd key that is not a valid backend")).toBe(3);
  expect(count(logs, "the path has 120 bytes, more than the 107 a Unix socket path can have")).toBe(1);

  await put(`${prefix}later`, "10.0.0.3:443");
  await waitFor("later added", () => latest(sets).includes("later"));
  // Each invalid entry is logged once, not again on every publish.
  expect(count(logs, "skipping an etcd key that is not a valid backend")).toBe(3);
});

test("EtcdProvider hints at a prefix without a slash", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}api-1`, "10.0.0.1:443");
  // The prefix as a user may write it, without its last slash, gives the id "/api-1".
  const { logs } = startProvider(prefix.slice(0, -1), [endpoint]);

  await waitFor("the skip warning", () => count(logs, "skipping an etcd key that is not a valid backend") === 1);
  expect(count(logs, `fix="end the etcd prefix with / (${prefix}), so that each key's id is the part after it"`)).toBe(1);
});

test("EtcdProvider keeps the last valid target of a key", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}good`, "10.0.0.1:443");
  await put(`${prefix}other`, "10.0.0.2:443");
  const { sets, logs } = startProvider(prefix, [endpoint]);
  await waitFor("the first set", () => sets.length > 0);

  // A typo, ';' for ':', makes the value an invalid target.
  await put(`${prefix}good`, "10.0.0.1;443");
  await waitFor("the invalid value warning", () => count(logs, "etcd key has an invalid target; keeping its last valid target") === 1);
  await put(`${prefix}third`, "10.0.0.3:443");
  await waitFor("third added", () => latest(sets).includes("third"));

  expect(latest(sets)).toBe("good=10.0.0.1:443,other=10.0.0.2:443,third=10.0.0.3:443");
  const warning = logs.find((line) => line.includes("keeping its last valid target"))!;
  expect(warning).toContain(`key=${prefix}good`);
  expect(warning).toContain("target=10.0.0.1:443");
  expect(warning).toContain('invalid address \\"10.0.0.1;443\\"');

  await put(`${prefix}good`, "10.0.0.11:443");
  await waitFor("good retargeted", () => latest(sets).includes("10.0.0.11"));
  expect(latest(sets)).toBe("good=10.0.0.11:443,other=10.0.0.2:443,third=10.0.0.3:443");
  expect(count(logs, "etcd key has a valid target again")).toBe(1);

  // The same typo after the fix is logged again.
  await put(`${prefix}good`, "10.0.0.1;443");
  await waitFor("the repeated typo's warning", () => count(logs, "etcd key has an invalid target; keeping its last valid target") === 2);

  // A deleted key leaves the set even while its last value was invalid.
  await put(`${prefix}good`, "not an address");
  await waitFor("the third invalid value warning", () => count(logs, "etcd key has an invalid target; keeping its last valid target") === 3);
  await del(`${prefix}good`);
  await waitFor("good removed", () => !latest(sets).includes("good"));
  expect(latest(sets)).toBe("other=10.0.0.2:443,third=10.0.0.3:443");
});

test("EtcdProvider never publishes an empty set", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}only`, "10.0.0.1:443");
  const { sets, logs } = startProvider(prefix, [endpoint]);
  await waitFor("the first set", () => sets.length > 0);

  await del(`${prefix}only`);
  await waitFor("the empty warning", () => count(logs, "no valid backend under the etcd prefix") === 1);
  expect(sets.length).toBe(1);
  expect(latest(sets)).toBe("only=10.0.0.1:443");

  await put(`${prefix}again`, "10.0.0.2:443");
  await waitFor("again added", () => latest(sets).includes("again"));
  expect(latest(sets)).toBe("again=10.0.0.2:443");
  const cleared = logs.filter((line) => line.includes("INFO  usable backends listed again; the backend set is no longer stale"));
  expect(cleared.length).toBe(1);
  expect(cleared[0]).toContain("staleForMs=");
});

test("EtcdProvider resumes its watch from the last revision", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  await put(`${prefix}b`, "10.0.0.2:443");
  const relay = await startRelay();
  const { sets, logs } = startProvider(prefix, [relay.url]);
  await waitFor("the first set", () => sets.length > 0);
  await waitFor("the watch to be open", () => relay.server.activeCount > 0);

  // Cut the watch: etcd leaves the relay's set, so its connections close.
  relay.server.applySet(BackendSet.EMPTY);
  await waitFor("the watch failure", () => count(logs, "etcd range or watch failed") === 1);
  const publishedBeforeOutage = sets.length;
  await put(`${prefix}c`, "10.0.0.3:443");
  await del(`${prefix}a`);
  expect(sets.length).toBe(publishedBeforeOutage);

  relay.server.applySet(relay.etcdSet);
  await waitFor("the changes made during the outage", () => latest(sets) === "b=10.0.0.2:443,c=10.0.0.3:443");
  expect(count(logs, "read etcd prefix")).toBe(1);
  expect(count(logs, "etcd reachable again")).toBe(1);
});

test("EtcdProvider reads the prefix again after compaction", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  const relay = await startRelay();
  const { provider, sets, logs } = startProvider(prefix, [relay.url]);
  await waitFor("the first set", () => sets.length > 0);
  await waitFor("the watch to be open", () => relay.server.activeCount > 0);
  const seenRevision = provider.revision!;

  relay.server.applySet(BackendSet.EMPTY);
  await waitFor("the watch failure", () => count(logs, "etcd range or watch failed") === 1);
  await put(`${prefix}b`, "10.0.0.2:443");
  await put(`${prefix}b`, "10.0.0.22:443");
  const status = JSON.parse(await etcdctl(endpoint, ["get", `${prefix}b`, "-w", "json"])) as { header: { revision: number } };
  expect(status.header.revision).toBeGreaterThan(seenRevision + 1);
  await etcdctl(endpoint, ["compact", String(status.header.revision)]);

  relay.server.applySet(relay.etcdSet);
  await waitFor("the set after relisting", () => latest(sets) === "a=10.0.0.1:443,b=10.0.0.22:443");
  expect(count(logs, "watch revision compacted; reading the prefix again")).toBe(1);
  expect(count(logs, "read etcd prefix")).toBe(2);
  // The compacted revision is still the one the first range returned, but that range was not
  // just read, so the prefix is read again at once rather than after a back-off.
  const afterCompaction = logs.slice(logs.findIndex((line) => line.includes("watch revision compacted")));
  expect(afterCompaction.findIndex((line) => line.includes("read etcd prefix"))).toBeGreaterThan(0);
  expect(afterCompaction.filter((line) => line.includes("etcd range or watch failed"))).toEqual([]);
});

test("EtcdProvider reopens a silent watch", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  const { sets, logs } = startProvider(prefix, [endpoint], undefined, 300);
  await waitFor("the first set", () => sets.length > 0);

  await waitFor("the idle timeout", () => count(logs, "sent nothing for 300 ms") >= 1);
  expect(count(logs, `err="etcd /v3/watch at ${endpoint} sent nothing for 300 ms"`)).toBeGreaterThanOrEqual(1);
  await put(`${prefix}b`, "10.0.0.2:443");

  await waitFor("b added", () => latest(sets).includes("b="));
  expect(latest(sets)).toBe("a=10.0.0.1:443,b=10.0.0.2:443");
  expect(count(logs, "read etcd prefix")).toBe(1);
});

test("EtcdProvider names the endpoint of a stopped member", async () => {
  // A member of its own, since stopping the shared one would fail the other tests.
  const own = await EtcdCluster.start(1);
  cleanup.push(() => own.stop());
  const url = own.members[0]!.clientUrl;
  await etcdctl(url, ["put", "/stopped/a", "10.0.0.1:443"]);
  const { provider, sets, logs } = startProvider("/stopped/", [url]);
  await waitFor("the first set", () => sets.length > 0);
  await etcdctl(url, ["put", "/stopped/b", "10.0.0.2:443"]);
  await waitFor("the event through the watch", () => sets.length === 2);

  await own.stop();

  await waitFor("the failure", () => count(logs, "etcd range or watch failed") >= 1);
  // Debian's etcd 3.4.23 ends an open gateway watch with "transport is closing".
  expect(provider.health.lastError).toStartWith(`etcd /v3/watch at ${url} failed: `);
  expect(logs.find((line) => line.includes("etcd range or watch failed"))).toContain(`err="etcd /v3/watch at ${url} failed: `);
}, 60_000);

test("EtcdProvider names the endpoint of a cut watch", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  const relay = await startRelay();
  const { provider, sets, logs } = startProvider(prefix, [relay.url]);
  await waitFor("the first set", () => sets.length > 0);
  await put(`${prefix}b`, "10.0.0.2:443");
  await waitFor("the event through the watch", () => sets.length === 2);

  // Removing etcd from the relay's set closes the watch's connection with a reset.
  relay.server.applySet(BackendSet.EMPTY);

  await waitFor("the failure", () => count(logs, "etcd range or watch failed") >= 1);
  expect(provider.health.lastError).toStartWith(`etcd /v3/watch at ${relay.url} failed while reading the response: `);
});

test("EtcdProvider moves to the next endpoint after a failure", async () => {
  // A listener of our own that closes every connection at once stands for a dead member.
  const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: (socket) => void socket.end(), data: () => {} } });
  cleanup.push(() => dead.stop(true));
  const prefix = freshPrefix();
  await put(`${prefix}x`, "10.0.0.9:443");

  const { sets, logs } = startProvider(prefix, [`http://127.0.0.1:${dead.port}`, endpoint]);

  await waitFor("the set through the second endpoint", () => sets.length > 0);
  expect(latest(sets)).toBe("x=10.0.0.9:443");
  expect(count(logs, `endpoint=http://127.0.0.1:${dead.port}`)).toBeGreaterThanOrEqual(1);
});

test("EtcdProvider names a refused endpoint", async () => {
  // A listener bound and stopped again leaves a loopback port that refuses connections.
  const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => {} } });
  const url = `http://127.0.0.1:${closed.port}`;
  closed.stop(true);

  const { provider, logs } = startProvider(freshPrefix(), [url]);

  await waitFor("the failure", () => count(logs, "etcd range or watch failed") >= 1);
  expect(provider.health.lastError).toBe(`etcd /v3/kv/range at ${url} failed: connection refused (ECONNREFUSED); check that etcd serves clients at ${url} (etcd.endpoints)`);
});

test("EtcdProvider reads over TLS with a client certificate", async () => {
  const secure = await EtcdCluster.start(1, { tls: true });
  cleanup.push(() => secure.stop());
  const member = secure.members[0]!;
  const files = member.tls!;
  await etcdctl(member.clientUrl, ["--cacert", files.caFile, "--cert", files.clientCertFile, "--key", files.clientKeyFile, "put", "/secure/api-1", "10.0.0.11:6443"]);

  const { sets } = startProvider("/secure/", [member.clientUrl], {
    caPem: readFileSync(files.caFile, "utf8"),
    certPem: readFileSync(files.clientCertFile, "utf8"),
    keyPem: readFileSync(files.clientKeyFile, "utf8"),
  });

  await waitFor("the set over TLS", () => sets.length > 0);
  expect(latest(sets)).toBe("api-1=10.0.0.11:6443");
}, 60_000);

test.each([
  ["without the CA", {}, "is not trusted: unable to verify the first certificate; set etcd.caFile to the CA that signed the etcd members' certificates"],
  ["without a client certificate", { withCa: true }, "TLS handshake failed"],
])("EtcdProvider fails over TLS %s", async (_case, options: { withCa?: boolean }, error: string) => {
  const secure = await EtcdCluster.start(1, { tls: true });
  cleanup.push(() => secure.stop());
  const member = secure.members[0]!;
  const caPem = options.withCa === true ? readFileSync(member.tls!.caFile, "utf8") : undefined;

  const { sets, logs } = startProvider("/secure/", [member.clientUrl], { caPem });

  await waitFor("the TLS failure", () => count(logs, "etcd range or watch failed") === 1);
  expect(logs.find((line) => line.includes("etcd range or watch failed"))).toContain(error);
  expect(sets.length).toBe(0);
}, 60_000);

test("EtcdProvider stops without publishing again", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}x`, "10.0.0.9:443");
  const { provider, sets } = startProvider(prefix, [endpoint]);
  await waitFor("the first set", () => sets.length > 0);

  await provider.stop();
  await put(`${prefix}y`, "10.0.0.10:443");
  // A second provider on the same prefix shows when the put has reached the watches.
  const witness = startProvider(prefix, [endpoint]);
  await waitFor("the witness to see y", () => latest(witness.sets).includes("y="));
  expect(sets.length).toBe(1);
});

test("EtcdProvider rejects a range over the size limit", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  await put(`${prefix}b`, `10.0.0.2:443${" ".repeat(4000)}`);
  const { provider, sets, logs } = startProviderWith({ endpoints: [endpoint], prefix, maxResponseBytes: 2048 });

  await waitFor("the failure", () => provider.health.failing);
  expect(provider.health.lastError).toContain(`etcd /v3/kv/range at ${endpoint} response is larger than the limit of 2048 bytes`);
  expect(sets.length).toBe(0);
  expect(count(logs, "WARN  etcd range or watch failed")).toBe(1);
});

test("EtcdProvider keeps the set after a watch response over the limit", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  const { provider, sets } = startProviderWith({ endpoints: [endpoint], prefix, maxResponseBytes: 2048 });
  await waitFor("the first set", () => sets.length === 1);

  await put(`${prefix}b`, `10.0.0.2:443${" ".repeat(4000)}`);
  await waitFor("the failure", () => provider.health.lastError?.includes("longer than the limit") === true);
  expect(provider.health.lastError).toContain(`etcd /v3/watch at ${endpoint} failed: JSON object in stream is longer than the limit of 2048 characters`);
  expect(latest(sets)).toBe("a=10.0.0.1:443");
});

test("EtcdProvider rejects a set over the backend limit", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  await put(`${prefix}b`, "10.0.0.2:443");
  const { provider, sets, logs } = startProviderWith({ endpoints: [endpoint], prefix, maxBackends: 2 });
  await waitFor("the first set", () => sets.length === 1);

  await put(`${prefix}c`, "10.0.0.3:443");
  await waitFor("the failure", () => provider.health.failing);
  expect(provider.health.lastError).toBe("the new backend set has 3 backends, more than the limit of 2");
  expect(count(logs, "WARN  etcd range or watch failed")).toBe(1);
  expect(latest(sets)).toBe("a=10.0.0.1:443,b=10.0.0.2:443");

  await del(`${prefix}a`);
  await waitFor("the smaller set", () => latest(sets) === "b=10.0.0.2:443,c=10.0.0.3:443");
  // The list or range that publishes it ends the failure streak only once its watch proves itself.
  await waitFor("the recovery", () => !provider.health.failing);
});

test("EtcdProvider backs off when each watch breaks at once", async () => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  // Each watch is created, then dropped as silent after 100 ms, before it proves itself after 5 s.
  const { provider, sets, logs } = startProvider(prefix, [endpoint], undefined, 100, 5000);

  await waitFor("five failed watches", () => count(logs, "sent nothing for 100 ms") >= 5);
  expect(sets.length).toBe(1);
  expect(count(logs, "WARN  etcd range or watch failed")).toBe(1);
  expect(count(logs, "etcd reachable again")).toBe(0);
  expect(provider.health.failing).toBe(true);

  // An event proves the watch, which ends the streak.
  await put(`${prefix}b`, "10.0.0.2:443");
  await waitFor("the recovery", () => count(logs, "etcd reachable again") === 1);
  expect(latest(sets)).toBe("a=10.0.0.1:443,b=10.0.0.2:443");
});

/** Range response of the gateway mocks: the key `/mock/a` = `10.0.0.1:443` at revision 5. */
const MOCK_RANGE_BODY = JSON.stringify({
  header: { revision: "5" },
  kvs: [{ key: Buffer.from("/mock/a").toString("base64"), value: Buffer.from("10.0.0.1:443").toString("base64"), mod_revision: "5" }],
});

/** Starts a mock of etcd's JSON gateway that returns `respond(path)` to each request; returns its URL. */
function startGatewayMock(respond: (path: string) => Response | Promise<Response>): string {
  const gateway = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => respond(new URL(request.url).pathname) });
  cleanup.push(() => gateway.stop(true));

  return `http://127.0.0.1:${gateway.port}`;
}

test("EtcdProvider backs off when each watch is compacted", async () => {
  // A real etcd cannot compact the revision that a range has just returned, so a mock of
  // the JSON gateway stands in: every range returns one key at revision 5, and every watch
  // returns etcd's compaction response.
  let ranges = 0;
  const url = startGatewayMock((path) => {
    if (path === "/v3/kv/range") {
      ranges++;

      return new Response(MOCK_RANGE_BODY);
    }

    return new Response(JSON.stringify({ result: { header: { revision: "5" }, created: true, compact_revision: "9", canceled: true } }) + "\n");
  });

  const { sets, logs } = startProvider("/mock/", [url]);
  await waitFor("four ranges", () => ranges >= 4);

  expect(sets.length).toBe(1);
  expect(count(logs, "WARN  etcd range or watch failed")).toBe(1);
  const delays = logs.map((line) => Number(/retryInMs=(\d+)/.exec(line)?.[1] ?? Number.NaN)).filter((delay) => !Number.isNaN(delay));
  expect(delays.length).toBeGreaterThanOrEqual(3);
});

test("EtcdProvider moves on from an endpoint that never answers", async () => {
  // A listener of our own that accepts connections and never sends a byte stands for a hung member.
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => {} } });
  cleanup.push(() => silent.stop(true));
  const silentUrl = `http://127.0.0.1:${silent.port}`;
  const prefix = freshPrefix();
  await put(`${prefix}x`, "10.0.0.9:443");

  const { provider, sets, logs } = startProviderWith({ endpoints: [silentUrl, endpoint], prefix, requestTimeoutMs: 300 });

  await waitFor("the set through the second endpoint", () => sets.length > 0);
  expect(latest(sets)).toBe("x=10.0.0.9:443");
  const warning = logs.find((line) => line.includes("WARN  etcd range or watch failed")) ?? "";
  expect(warning).toContain(`etcd /v3/kv/range at ${silentUrl} timed out after 300 ms without a response; check that etcd serves clients at ${silentUrl} (etcd.endpoints) and is not overloaded`);
  await waitFor("the recovery", () => !provider.health.failing);
});

test("EtcdProvider times out a watch that never starts", async () => {
  // A mock of the JSON gateway that responds to each range and to no watch.
  const url = startGatewayMock((path) => (path === "/v3/kv/range" ? new Response(MOCK_RANGE_BODY) : new Promise<Response>(() => {})));

  const { provider, sets } = startProviderWith({ endpoints: [url], prefix: "/mock/", requestTimeoutMs: 300 });

  await waitFor("the timeout", () => provider.health.failing);
  expect(provider.health.lastError).toStartWith(`etcd /v3/watch at ${url} timed out after 300 ms without a response`);
  expect(latest(sets)).toBe("a=10.0.0.1:443");
});

/** Writes `count` puts of one key outside every test prefix through the JSON gateway at `url`, to move its revision on. */
async function advanceRevision(url: string, count: number): Promise<void> {
  const key = Buffer.from("/filler").toString("base64");
  for (let index = 0; index < count; index++) {
    const value = Buffer.from(String(index)).toString("base64");
    const response = await fetch(`${url}/v3/kv/put`, { method: "POST", body: JSON.stringify({ key, value }), proxy: false });
    expect(response.status).toBe(200);
  }
}

test.each([
  ["the revision goes backwards", false, "below revision"],
  ["the cluster id changes", true, "changed from"],
])("EtcdProvider reads the prefix again when %s", async (_case, passOldRevision: boolean, reason: string) => {
  const prefix = freshPrefix();
  await put(`${prefix}a`, "10.0.0.1:443");
  await put(`${prefix}b`, "10.0.0.2:443");
  await advanceRevision(endpoint, 3);
  const relay = await startRelay();
  const { provider, sets, logs } = startProvider(prefix, [relay.url]);
  await waitFor("the first set", () => sets.length > 0);
  await waitFor("the watch to be open", () => relay.server.activeCount > 0);

  // A new cluster stands for etcd replaced or restored without --bump-revision.
  const replacement = await EtcdCluster.start(1);
  cleanup.push(() => replacement.stop());
  const member = replacement.members[0]!;
  await etcdctl(member.clientUrl, ["put", `${prefix}c`, "10.0.0.3:443"]);
  if (passOldRevision) {
    await advanceRevision(member.clientUrl, provider.revision!);
  }
  relay.server.applySet(new BackendSet([createBackend("etcd-1", member.clientAddress)]));

  await waitFor("the new cluster's set", () => latest(sets) === "c=10.0.0.3:443");
  const warnings = logs.filter((line) => line.includes("WARN  etcd history changed"));
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toContain(reason);
  expect(count(logs, "read etcd prefix")).toBe(2);
}, 60_000);

test("EtcdProvider backs off when each watch ends after a progress notification", async () => {
  // etcd 3.4 sends progress notifications every 10 minutes by default, so this test uses a
  // mock of the JSON gateway. Every range returns one key at revision 5, and every watch sends
  // the created response and one progress notification, then ends.
  let watches = 0;
  const created = JSON.stringify({ result: { header: { revision: "5" }, created: true } });
  const progress = JSON.stringify({ result: { header: { revision: "5" } } });
  const url = startGatewayMock((path) => {
    if (path === "/v3/kv/range") {
      return new Response(MOCK_RANGE_BODY);
    }
    watches++;

    return new Response(`${created}\n${progress}\n`);
  });

  const { provider, sets, logs } = startProvider("/mock/", [url], undefined, undefined, 5000);

  await waitFor("six ended watches", () => watches >= 6);
  expect(sets.length).toBe(1);
  expect(count(logs, "WARN  etcd range or watch failed")).toBe(1);
  expect(count(logs, "etcd reachable again")).toBe(0);
  expect(provider.health.failing).toBe(true);
  // initialMs 50 doubles up to maxMs 500, and the delay is between half the base and the base.
  expect(Math.max(...retryDelays(logs))).toBeGreaterThanOrEqual(200);
});

test("EtcdProvider names the URL of a range that is not JSON", async () => {
  const url = startGatewayMock(() => new Response("<html><body>502 Bad Gateway</body></html>"));
  const { provider } = startProvider("/mock/", [url]);

  await waitFor("the failure", () => provider.health.failing);
  const error = provider.health.lastError ?? "";
  expect(error).toStartWith(`etcd /v3/kv/range at ${url} response is not JSON (`);
  expect(error).toContain(`it starts with "<html><body>502 Bad Gateway</body></html>"`);
  expect(error).toEndWith(`check that ${url} is the client URL of an etcd 3.4 or later member (etcd.endpoints), not a proxy or another service`);
});

test("EtcdProvider words a watch event of the wrong shape on one line", async () => {
  const created = JSON.stringify({ result: { header: { revision: "5" }, created: true } });
  const event = JSON.stringify({ result: { header: { revision: "6" }, events: [{ type: "PUT", kv: { key: 7, value: "eA==" } }] } });
  const url = startGatewayMock((path) => new Response(path === "/v3/kv/range" ? MOCK_RANGE_BODY : `${created}\n${event}\n`));
  const { provider, sets } = startProvider("/mock/", [url]);

  await waitFor("the failure", () => provider.health.failing);
  const error = provider.health.lastError ?? "";
  expect(error).not.toContain("\n");
  expect(error).toBe(
    `etcd /v3/watch at ${url} sent an invalid response: field result.events.0.kv.key: expected string, received number; check that ${url} is the client URL of an etcd 3.4 or later member (etcd.endpoints), not a proxy or another service`,
  );
  expect(latest(sets)).toBe("a=10.0.0.1:443");
});

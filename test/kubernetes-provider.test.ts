import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createBackend } from "../src/backend.ts";
import { listenerRoute } from "../src/cluster-providers.ts";
import { BackendSet } from "../src/backend-set.ts";
import { Logger } from "../src/logger.ts";
import type { KubernetesAccess } from "../src/providers/kubernetes-access.ts";
import { KubernetesProvider, type KubernetesProviderOptions } from "../src/providers/kubernetes-provider.ts";
import { Server } from "../src/server.ts";
import { KubernetesApiMock, makeCertificates, type MockOptions, removeCertificates, SERVER_NAME, type TestCertificates, type TestSlice } from "./support/kubernetes-api-mock.ts";
import { retryDelays } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

// No kube-apiserver can run in this test environment, so these tests use a mock: a local
// HTTPS server (certificates made by openssl) that serves the real EndpointSlice list and
// watch wire format, with chunked watch events, bookmarks and 410 Gone.

let certificates: TestCertificates;

beforeAll(async () => {
  certificates = await makeCertificates();
});

afterAll(() => {
  removeCertificates(certificates);
});

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const TOKEN = "test-token-1";

async function startMock(options: Partial<Omit<MockOptions, "certificates">> = {}): Promise<KubernetesApiMock> {
  const mock = await KubernetesApiMock.start({ certificates, expectedToken: () => TOKEN, ...options });
  cleanup.push(() => mock.stop());

  return mock;
}

function tokenAccess(mock: KubernetesApiMock, overrides: Partial<KubernetesAccess> = {}): KubernetesAccess {
  return { server: mock.url, tlsServerName: SERVER_NAME, caPem: certificates.caPem, bearerToken: TOKEN, source: "test", ...overrides };
}

function startProvider(access: KubernetesAccess, options: Partial<KubernetesProviderOptions> = {}): { provider: KubernetesProvider; sets: BackendSet[]; logs: string[] } {
  const sets: BackendSet[] = [];
  const logs: string[] = [];
  const logger = new Logger({ level: "debug", sink: (line) => logs.push(line) });
  const provider = new KubernetesProvider({ access, logger, backoff: { initialMs: 50, maxMs: 300 }, stableWatchMs: 500, ...options });
  provider.start((set) => sets.push(set));
  cleanup.push(() => provider.stop());

  return { provider, sets, logs };
}

function latest(sets: BackendSet[]): string {
  return sets.at(-1)?.describe() ?? "(nothing published)";
}

function count(logs: string[], text: string): number {
  return logs.filter((line) => line.includes(text)).length;
}

const httpsPort = [{ name: "https", port: 6443 }];

const twoApiServers: TestSlice = {
  name: "kubernetes",
  endpoints: [
    { addresses: ["10.0.0.11"], ready: true },
    { addresses: ["10.0.0.12"] },
    { addresses: ["10.0.0.13"], ready: false },
  ],
  ports: httpsPort,
};

test("KubernetesProvider lists ready https addresses", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  mock.apply({ name: "kubernetes-other-port", endpoints: [{ addresses: ["10.0.0.99"], ready: true }], ports: [{ name: "metrics", port: 9100 }] });
  const { sets } = startProvider(tokenAccess(mock));

  await waitFor("the first set", () => sets.length > 0);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");
  expect(mock.requestsOf("list")[0]!.authorization).toBe(`Bearer ${TOKEN}`);
});

test("KubernetesProvider watches from the list's resource version", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  const watch = mock.requestsOf("watch")[0]!.query;
  expect(watch.get("resourceVersion")).toBe(mock.resourceVersion);
  expect(watch.get("allowWatchBookmarks")).toBe("true");
  expect(Number(watch.get("timeoutSeconds"))).toBeGreaterThanOrEqual(300);

  // Step 1, MODIFIED: 10.0.0.11 turns not ready, 10.0.0.13 turns ready.
  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.11"], ready: false }, { addresses: ["10.0.0.12"] }, { addresses: ["10.0.0.13"], ready: true }] });
  await waitFor("step 1", () => latest(sets).includes("10.0.0.13"));
  expect(latest(sets)).toBe("kubernetes:10.0.0.12=10.0.0.12:6443,kubernetes:10.0.0.13=10.0.0.13:6443");

  // Step 2, ADDED: an IPv6 slice.
  mock.apply({ name: "kubernetes-v6", addressType: "IPv6", endpoints: [{ addresses: ["fd00::14"], ready: true }], ports: httpsPort });
  await waitFor("step 2", () => latest(sets).includes("fd00::14"));
  expect(latest(sets)).toBe("kubernetes:10.0.0.12=10.0.0.12:6443,kubernetes:10.0.0.13=10.0.0.13:6443,kubernetes:fd00::14=[fd00::14]:6443");

  // Step 3, DELETED: the IPv4 slice goes away.
  mock.delete("kubernetes");
  await waitFor("step 3", () => !latest(sets).includes("10.0.0.12"));
  expect(latest(sets)).toBe("kubernetes:fd00::14=[fd00::14]:6443");
  expect(mock.requestsOf("list").length).toBe(1);
});

test("KubernetesProvider follows list continue tokens", async () => {
  const mock = await startMock({ pageSize: 1 });
  mock.apply({ name: "slice-a", endpoints: [{ addresses: ["10.0.0.1"] }], ports: httpsPort });
  mock.apply({ name: "slice-b", endpoints: [{ addresses: ["10.0.0.2"] }], ports: httpsPort });
  mock.apply({ name: "slice-c", endpoints: [{ addresses: ["10.0.0.3"] }], ports: httpsPort });
  const { sets } = startProvider(tokenAccess(mock));

  await waitFor("the first set", () => sets.length > 0);
  expect(latest(sets)).toBe("kubernetes:10.0.0.1=10.0.0.1:6443,kubernetes:10.0.0.2=10.0.0.2:6443,kubernetes:10.0.0.3=10.0.0.3:6443");
  expect(mock.requestsOf("list").map((request) => request.query.get("continue"))).toEqual([null, "1", "2"]);
});

test("KubernetesProvider resumes after a dropped watch", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const relay = await startRelay(mock);
  const { sets, logs } = startProvider(tokenAccess(mock), { route: () => ({ url: relay.url }) });
  await waitFor("the watch", () => mock.openWatches === 1);
  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.11"], ready: true }] });
  await waitFor("the modification", () => !latest(sets).includes("10.0.0.12"));
  const lastSeen = mock.resourceVersion;

  // Cut the connection: the mock leaves the relay's set, so tinylb closes the watch's connection.
  relay.server.applySet(BackendSet.EMPTY);
  await waitFor("the watch failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.11"], ready: true }, { addresses: ["10.0.0.15"], ready: true }] });
  relay.server.applySet(relay.mockSet);

  await waitFor("the event sent while the watch was down", () => latest(sets).includes("10.0.0.15"));
  expect(mock.requestsOf("watch")[1]!.query.get("resourceVersion")).toBe(lastSeen);
  expect(mock.requestsOf("list").length).toBe(1);
  expect(count(logs, "Kubernetes API reachable again")).toBe(1);
});

test("KubernetesProvider resumes from a bookmark", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.advance(50);
  mock.bookmark();
  const bookmarked = mock.resourceVersion;
  // A stream delivers what was enqueued before its end, so the provider reads the bookmark first.
  mock.endWatches();

  await waitFor("the second watch", () => mock.requestsOf("watch").length === 2);
  expect(mock.requestsOf("watch")[1]!.query.get("resourceVersion")).toBe(bookmarked);
  expect(mock.requestsOf("list").length).toBe(1);
});

test("KubernetesProvider lists again after a 410 ERROR event", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.21"], ready: true }] });
  await waitFor("the modification", () => latest(sets).includes("10.0.0.21"));
  // These three steps run in one turn of the event loop, so no watch request comes in between.
  mock.endWatches();
  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.22"], ready: true }] });
  mock.expireHistory();

  await waitFor("the set after listing again", () => latest(sets) === "kubernetes:10.0.0.22=10.0.0.22:6443");
  expect(mock.requestsOf("list").length).toBe(2);
  expect(count(logs, "resource version too old; listing EndpointSlices again")).toBe(1);
  // The ERROR event's line names the watch's URL.
  expect(count(logs, "Kubernetes watch of https://127.0.0.1:")).toBe(1);
});

test("KubernetesProvider lists again after HTTP 410", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.failWith = { kind: "watch", status: 410, body: "too old resource version" };
  mock.endWatches();
  await waitFor("the failed watch", () => mock.requestsOf("watch").length >= 2);
  mock.failWith = undefined;
  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.31"], ready: true }] });

  await waitFor("the set after listing again", () => latest(sets) === "kubernetes:10.0.0.31=10.0.0.31:6443");
  expect(mock.requestsOf("list").length).toBeGreaterThanOrEqual(2);
});

test("KubernetesProvider lists again at once for an old list", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  // The slices stay as listed while the API server's history moves on and expires, so the next
  // watch, from the listed version, gets 410 although the list was not just made. The watch
  // lasts longer than stableWatchMs first, so its end is not a failure of its own.
  await Bun.sleep(600);
  mock.advance(50);
  mock.expireHistory();
  mock.endWatches();

  await waitFor("the second list", () => mock.requestsOf("list").length === 2);
  await waitFor("the watch after it", () => mock.openWatches === 1);
  expect(count(logs, "resource version too old; listing EndpointSlices again")).toBe(1);
  expect(count(logs, "Kubernetes list or watch failed")).toBe(0);
  expect(sets.length).toBe(1);
});

test("KubernetesProvider backs off when each watch is Gone", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  mock.failWith = { kind: "watch", status: 410, body: "too old resource version" };
  const { sets, logs } = startProvider(tokenAccess(mock));

  await waitFor("three lists", () => mock.requestsOf("list").length >= 3);
  // Each 410 for a version that a list has just returned goes through the backoff.
  expect(count(logs, "Kubernetes list or watch failed")).toBeGreaterThanOrEqual(2);
  expect(sets.length).toBe(1);
});

test("KubernetesProvider keeps the set on an empty answer", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { provider, sets, logs } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);
  const before = latest(sets);
  expect(provider.health.stale).toBe(false);

  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.11"], ready: false }] });
  await waitFor("the empty warning", () => count(logs, "no ready address with an https port") === 1);
  const staleSince = provider.health.staleSinceMs;
  mock.delete("kubernetes");
  await waitFor("the delete event", () => count(logs, "type=DELETED") === 1);

  expect(sets.length).toBe(1);
  expect(latest(sets)).toBe(before);
  // One warning per streak of empty responses, not one per event.
  expect(count(logs, "no ready address with an https port")).toBe(1);
  expect(provider.health.stale).toBe(true);
  expect(provider.health.staleReason).toBe("no ready address with an https port in the EndpointSlices");
  expect(provider.health.staleSinceMs).toBe(staleSince!);
  expect(provider.health.failing).toBe(false);

  // The same set as before is not published again, but the stale mark clears.
  mock.apply(twoApiServers);
  await waitFor("the stale mark to clear", () => !provider.health.stale);
  expect(sets.length).toBe(1);
  const cleared = logs.filter((line) => line.includes("INFO  usable backends listed again; the backend set is no longer stale"));
  expect(cleared.length).toBe(1);
  expect(cleared[0]).toContain("staleForMs=");
});

test("KubernetesProvider publishes nothing for an empty first list", async () => {
  const mock = await startMock();
  const { sets, logs } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  expect(sets.length).toBe(0);
  expect(count(logs, "no ready address with an https port")).toBe(1);

  mock.apply(twoApiServers);
  await waitFor("the first set", () => sets.length === 1);
});

test("KubernetesProvider keeps the set while the API fails", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.failWith = { kind: "watch", status: 500 };
  mock.dropWatches();
  await waitFor("three failed watches", () => mock.requestsOf("watch").length >= 4).catch((error) => {
    throw new Error(`${error}\n${logs.join("\n")}`);
  });
  expect(sets.length).toBe(1);
  // One warning per cause: the dropped watch, then the first 500; the repeated 500s are debug lines.
  const warnings = logs.filter((line) => line.includes("WARN  Kubernetes list or watch failed"));
  expect(warnings.length).toBe(2);
  expect(warnings[0]).not.toContain("HTTP 500");
  expect(warnings[1]).toContain("HTTP 500");
  expect(warnings[1]).toContain("failures=2");

  mock.failWith = undefined;
  await waitFor("the recovery", () => count(logs, "Kubernetes API reachable again") === 1, 3000).catch((error) => {
    throw new Error(`${error}\n${logs.join("\n")}`);
  });
});

test("KubernetesProvider authenticates with a client certificate", async () => {
  const mock = await startMock({ requireClientCertificate: true, expectedToken: undefined });
  mock.apply(twoApiServers);
  const access: KubernetesAccess = {
    server: mock.url,
    tlsServerName: SERVER_NAME,
    caPem: certificates.caPem,
    clientCertificate: { certPem: certificates.clientCertPem, keyPem: certificates.clientKeyPem },
    source: "test",
  };
  const { sets } = startProvider(access);

  await waitFor("the first set", () => sets.length > 0);
  expect(mock.requestsOf("list")[0]!.authorization).toBeNull();
});

test("KubernetesProvider fails without the client certificate", async () => {
  const mock = await startMock({ requireClientCertificate: true, expectedToken: undefined });
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider({ server: mock.url, tlsServerName: SERVER_NAME, caPem: certificates.caPem, source: "test" });

  await waitFor("the failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  expect(sets.length).toBe(0);
  expect(mock.requests.length).toBe(0);
});

test("KubernetesProvider reads the token file on every request", async () => {
  const tokenFile = join(certificates.dir, "token");
  writeFileSync(tokenFile, "token-a\n");
  let expected = "token-a";
  const mock = await startMock({ expectedToken: () => expected });
  mock.apply(twoApiServers);
  const { sets } = startProvider(tokenAccess(mock, { bearerToken: undefined, bearerTokenFile: tokenFile }));
  await waitFor("the watch", () => mock.openWatches === 1);

  writeFileSync(tokenFile, "token-b\n");
  expected = "token-b";
  mock.endWatches();
  await waitFor("a watch with the new token", () => mock.openWatches === 1 && mock.requestsOf("watch").length === 2);

  expect(mock.requestsOf("watch").map((request) => request.authorization)).toEqual(["Bearer token-a", "Bearer token-b"]);
  expect(sets.length).toBe(1);
});

test("KubernetesProvider rejects a server signed by another CA", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider(tokenAccess(mock, { caPem: certificates.otherCaPem }));

  await waitFor("the failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  expect(sets.length).toBe(0);
  expect(mock.requests.length).toBe(0);
  expect(logs.find((line) => line.includes("Kubernetes list or watch failed"))).toContain("the API server certificate is not signed by the CA of the kubeconfig cluster");
});

test("KubernetesProvider rejects a server certificate for another name", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider(tokenAccess(mock, { tlsServerName: "api.example.internal" }));

  await waitFor("the failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  expect(sets.length).toBe(0);
  const failure = logs.find((line) => line.includes("Kubernetes list or watch failed"))!;
  expect(failure).toContain(
    `err="Kubernetes request to ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices failed: the API server certificate does not match tlsServerName \\"api.example.internal\\"; set kubernetes.tlsServerName to a name in the certificate (ERR_TLS_CERT_ALTNAME_INVALID)"`,
  );
  expect(failure).not.toContain("verbose");
});

test("KubernetesProvider explains a rejected token", async () => {
  const mock = await startMock({ expectedToken: () => "another-token" });
  mock.apply(twoApiServers);
  const { sets, logs } = startProvider(tokenAccess(mock));

  await waitFor("the failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  expect(sets.length).toBe(0);
  const failure = logs.find((line) => line.includes("Kubernetes list or watch failed"))!;
  expect(failure).toContain(`Kubernetes request to ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices failed: HTTP 401 Unauthorized`);
  expect(failure).toContain("the API server rejected the token of the user in kubeconfig test; replace them with credentials that are valid for this cluster");
});

test("KubernetesProvider explains a forbidden list", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  mock.failWith = { kind: "list", status: 403, body: 'endpointslices.discovery.k8s.io is forbidden: User "tinylb" cannot list resource "endpointslices"' };
  const tokenFile = join(certificates.dir, "forbidden-token");
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const { provider, sets, logs } = startProvider(tokenAccess(mock, { bearerToken: undefined, bearerTokenFile: tokenFile, source: "service account /run/test-account" }));

  await waitFor("the failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  expect(sets.length).toBe(0);
  const failure = logs.find((line) => line.includes("Kubernetes list or watch failed"))!;
  expect(failure).toContain(`Kubernetes request to ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices failed: HTTP 403 Forbidden`);
  expect(failure).toContain(`grant the user of the token file ${tokenFile} of service account /run/test-account list and watch on endpointslices (discovery.k8s.io) in the namespace, or use a token or kubeconfig user that has them`);
  expect(provider.health.lastError).toContain(`Kubernetes request to ${mock.url}/`);
});

test("KubernetesProvider masks a password in the server URL", async () => {
  const mock = await startMock({ expectedToken: () => "another-token" });
  mock.apply(twoApiServers);
  const server = mock.url.replace("https://", "https://admin:secret-password@");
  const { provider, logs } = startProvider(tokenAccess(mock, { server }));

  await waitFor("the failure", () => count(logs, "Kubernetes list or watch failed") === 1);
  const masked = mock.url.replace("https://", "https://***@");
  expect(logs.find((line) => line.includes("Kubernetes list or watch failed"))).toContain(`Kubernetes request to ${masked}/apis/`);
  expect(provider.health.lastError).toContain(`Kubernetes request to ${masked}/apis/`);
  for (const line of [...logs, provider.health.lastError ?? ""]) {
    expect(line).not.toContain("secret-password");
    expect(line).not.toContain("admin:");
  }
});

test("KubernetesProvider reaches the API through tinylb once seeds are up", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;
  const listenerUrl = `https://127.0.0.1:${address.kind === "tcp" ? address.port : 0}`;

  // The access names a second mock; only the route through the tinylb server reaches the first.
  const direct = await startMock();
  let waiting = false;
  const { sets } = startProvider(tokenAccess(mock, { server: direct.url }), {
    route: () => ({ url: listenerUrl }),
    waitUntilReady: (signal) => {
      waiting = true;

      return waitUntilSeeded(server, signal);
    },
  });
  await waitFor("the provider to wait for seeds", () => waiting);
  expect(mock.requests.length).toBe(0);

  server.applySet(new BackendSet([createBackend("seed-1", `127.0.0.1:${mock.port}`)]));
  await waitFor("the first set", () => sets.length > 0);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");
  expect(server.stats.accepted).toBeGreaterThanOrEqual(1);
  expect(direct.requests.length).toBe(0);
});

test("KubernetesProvider reaches the API through a Unix listener", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const socketPath = join(certificates.dir, `tinylb-${mock.port}.sock`);
  const server = new Server({ listen: [{ kind: "unix", path: socketPath }] });
  server.applySet(new BackendSet([createBackend("seed-1", `127.0.0.1:${mock.port}`)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));

  const { sets } = startProvider(tokenAccess(mock), { route: () => listenerRoute(server.listeners[0]!.address) });

  await waitFor("the first set", () => sets.length > 0);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");
  expect(server.stats.accepted).toBeGreaterThanOrEqual(1);
});

test("KubernetesProvider rewatches when its API server leaves", async () => {
  // The provider's requests go through a tinylb server fed by the provider's own sets, as with
  // viaListener. API server 127.0.0.1 is the mock itself, and 127.0.0.2 is a second tinylb
  // server in front of the mock, so both addresses reach the same API.
  const mock = await startMock();
  const hop = new Server({ listen: [{ kind: "tcp", host: "127.0.0.2", port: 0 }] });
  hop.applySet(new BackendSet([createBackend("mock", `127.0.0.1:${mock.port}`)]));
  await hop.start();
  cleanup.push(() => hop.shutdown(0));
  const hopAddress = hop.listeners[0]!.address;
  const first: TestSlice = { name: "kubernetes-first", endpoints: [{ addresses: ["127.0.0.1"] }], ports: [{ name: "https", port: mock.port }] };
  const second: TestSlice = {
    name: "kubernetes-second",
    endpoints: [{ addresses: ["127.0.0.2"] }],
    ports: [{ name: "https", port: hopAddress.kind === "tcp" ? hopAddress.port : 0 }],
  };
  mock.apply(first);
  const relay = await startRelay(mock);
  const logs: string[] = [];
  const provider = new KubernetesProvider({
    access: tokenAccess(mock),
    route: () => ({ url: relay.url }),
    logger: new Logger({ level: "debug", sink: (line) => logs.push(line) }),
    backoff: { initialMs: 5000, maxMs: 10_000 },
    stableWatchMs: 500,
  });
  provider.start((set) => relay.server.applySet(set));
  cleanup.push(() => provider.stop());
  await waitFor("the watch through 127.0.0.1", () => mock.openWatches === 1 && relay.server.set.describe() === `kubernetes:127.0.0.1=127.0.0.1:${mock.port}`);
  mock.apply(second);
  await waitFor("127.0.0.2 added", () => relay.server.set.size === 2);

  // The API server the watch goes through leaves the set, so the relay closes the watch's connection.
  mock.delete(first.name);

  await waitFor("the watch through 127.0.0.2", () => mock.openWatches === 1 && hop.activeCount === 1);
  expect(count(logs, "Kubernetes list or watch failed")).toBe(0);
  expect(provider.health.failures).toBe(0);
  expect(provider.health.failing).toBe(false);
  const retries = logs.filter((line) => line.includes("INFO  Kubernetes request broke after its API server left the backend set"));
  expect(retries.length).toBe(1);
  expect(retries[0]).toContain(`removed=127.0.0.1:${mock.port}`);
});

/** Starts an in-process tinylb server in front of the mock, for tests that cut connections. */
async function startRelay(mock: KubernetesApiMock): Promise<{ server: Server; url: string; mockSet: BackendSet }> {
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  const mockSet = new BackendSet([createBackend("apiserver", `127.0.0.1:${mock.port}`)]);
  server.applySet(mockSet);
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, url: `https://127.0.0.1:${address.kind === "tcp" ? address.port : 0}`, mockSet };
}

async function waitUntilSeeded(server: Server, signal: AbortSignal): Promise<void> {
  while (server.set.size === 0 && !signal.aborted) {
    await Bun.sleep(20);
  }
}

test("KubernetesProvider stops reading an endless list", async () => {
  const mock = await startMock();
  mock.endlessBody = "list";
  const { provider, sets, logs } = startProvider(tokenAccess(mock), { maxResponseBytes: 1024 * 1024 });

  await waitFor("the failure", () => provider.health.failing);
  const error = provider.health.lastError ?? "";
  expect(error).toContain(`Kubernetes list of ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices response`);
  expect(error).toContain("larger than the limit of 1048576 bytes");
  expect(error).toMatch(/stopped at \d+\)/);
  expect(count(logs, "WARN  Kubernetes list or watch failed")).toBe(1);
  expect(sets.length).toBe(0);
  // The mock writes until the socket is closed, so a few MiB of socket buffers pass the limit.
  expect(mock.endlessBytesSent).toBeLessThan(32 * 1024 * 1024);
});

test("KubernetesProvider keeps the set after an endless watch event", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { provider, sets } = startProvider(tokenAccess(mock), { maxResponseBytes: 1024 * 1024 });
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.endlessBody = "watch";
  // The dropped watch fails first, with a connection error; the next watch gets the endless body.
  mock.dropWatches();
  await waitFor("the limit failure", () => provider.health.lastError?.includes("longer than the limit") === true);

  expect(provider.health.lastError).toContain(`Kubernetes watch of ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices failed`);
  expect(provider.health.lastError).toContain("longer than the limit of 1048576 characters");
  expect(sets.length).toBe(1);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");
});

test("KubernetesProvider rejects a set over the backend limit", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { provider, sets, logs } = startProvider(tokenAccess(mock), { maxBackends: 2 });
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.11"] }, { addresses: ["10.0.0.12"] }, { addresses: ["10.0.0.13"] }] });
  await waitFor("the failure", () => provider.health.failing);
  expect(provider.health.lastError).toBe("the new backend set has 3 backends, more than the limit of 2");
  expect(count(logs, "WARN  Kubernetes list or watch failed")).toBe(1);
  // The excess is in the kept slices, so the provider lists again, and the list fails the same way.
  await waitFor("a second list", () => mock.requestsOf("list").length >= 2);
  expect(sets.length).toBe(1);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");

  mock.apply({ ...twoApiServers, endpoints: [{ addresses: ["10.0.0.13"] }] });
  await waitFor("the smaller set", () => latest(sets) === "kubernetes:10.0.0.13=10.0.0.13:6443");
  // The list or range that publishes it ends the failure streak only once its watch proves itself.
  await waitFor("the recovery", () => !provider.health.failing);
});

test("KubernetesProvider backs off when each watch breaks at once", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  mock.endlessBody = "watch";
  const { provider, sets, logs } = startProvider(tokenAccess(mock), { maxResponseBytes: 64 * 1024, stableWatchMs: 5000 });

  await waitFor("six failed watches", () => mock.requestsOf("watch").length >= 6);
  expect(sets.length).toBe(1);
  // A list that succeeds and a watch that opens do not end the streak: one warning, then debug lines.
  expect(count(logs, "WARN  Kubernetes list or watch failed")).toBe(1);
  expect(count(logs, "Kubernetes API reachable again")).toBe(0);
  expect(provider.health.failing).toBe(true);
  const delays = logs.map((line) => Number(/retryInMs=(\d+)/.exec(line)?.[1] ?? Number.NaN)).filter((delay) => !Number.isNaN(delay));
  // initialMs 50 doubles up to maxMs 300, and the delay is between half the base and the base.
  expect(Math.max(...delays)).toBeGreaterThanOrEqual(150);

  mock.endlessBody = undefined;
  mock.dropWatches();
  await waitFor("the recovery", () => count(logs, "Kubernetes API reachable again") === 1, 10_000);
  expect(provider.health.failing).toBe(false);
});

test("KubernetesProvider times out a list that never answers", async () => {
  // A listener of our own that accepts connections and never sends a byte stands for a stuck API server.
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => {} } });
  cleanup.push(() => silent.stop(true));
  const server = `https://127.0.0.1:${silent.port}`;
  const { provider, logs } = startProvider({ server, tlsServerName: SERVER_NAME, caPem: certificates.caPem, bearerToken: TOKEN, source: "test" }, { requestTimeoutMs: 300 });

  await waitFor("the timeout", () => provider.health.failing);
  expect(provider.health.lastError).toBe(
    `Kubernetes list of ${server}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices timed out after 300 ms without a response; check that the API server, or tinylb's listener in front of it (viaListener), responds and is not overloaded`,
  );
  expect(count(logs, "WARN  Kubernetes list or watch failed")).toBe(1);
});

test("KubernetesProvider times out a watch that is never accepted", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  mock.hang = "watch";
  const { provider, sets } = startProvider(tokenAccess(mock), { requestTimeoutMs: 300 });

  await waitFor("the timeout", () => provider.health.failing);
  expect(provider.health.lastError).toStartWith(`Kubernetes watch of ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices timed out after 300 ms`);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");

  mock.hang = undefined;
  await waitFor("the recovery", () => !provider.health.failing);
});

test("KubernetesProvider backs off when each watch ends after a bookmark", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  mock.endAfterBookmark = true;
  const { provider, sets, logs } = startProvider(tokenAccess(mock), { stableWatchMs: 5000 });

  await waitFor("six ended watches", () => mock.requestsOf("watch").length >= 6);
  expect(sets.length).toBe(1);
  expect(mock.requestsOf("list").length).toBe(1);
  expect(count(logs, "WARN  Kubernetes list or watch failed")).toBe(1);
  expect(count(logs, "Kubernetes API reachable again")).toBe(0);
  expect(provider.health.failing).toBe(true);
  expect(provider.health.lastError).toMatch(/^the watch of https:\/\/127\.0\.0\.1:\d+\/apis\/discovery\.k8s\.io\/v1\/namespaces\/default\/endpointslices ended after \d+ ms without a change; check for a proxy/);
  // initialMs 50 doubles up to maxMs 300, and the delay is between half the base and the base.
  expect(Math.max(...retryDelays(logs))).toBeGreaterThanOrEqual(150);

  mock.endAfterBookmark = false;
  await waitFor("the recovery", () => !provider.health.failing, 10_000);
});

test("KubernetesProvider names the URL of a list that is not JSON", async () => {
  const mock = await startMock();
  mock.listBody = "<html><body>502 Bad Gateway</body></html>";
  const { provider } = startProvider(tokenAccess(mock));

  await waitFor("the failure", () => provider.health.failing);
  const error = provider.health.lastError ?? "";
  expect(error).toStartWith(`Kubernetes list of ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices response is not JSON (`);
  expect(error).toContain(`it starts with "<html><body>502 Bad Gateway</body></html>"`);
  expect(error).toEndWith("check that the kubeconfig server is a Kubernetes API server that serves discovery.k8s.io/v1, not a proxy or another service");
});

test("KubernetesProvider words a watch event of the wrong shape on one line", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { provider, sets } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.sendRaw(`${JSON.stringify({ type: "ADDED", object: { metadata: { name: 5 }, addressType: "IPv4" } })}\n`);

  await waitFor("the failure", () => provider.health.failing);
  const error = provider.health.lastError ?? "";
  expect(error).not.toContain("\n");
  expect(error).toStartWith(`Kubernetes watch of ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices ADDED event sent an invalid response: field metadata.name: expected string, received number; check that`);
  expect(latest(sets)).toBe("kubernetes:10.0.0.11=10.0.0.11:6443,kubernetes:10.0.0.12=10.0.0.12:6443");
});

test("KubernetesProvider words a reset watch without Bun's hints", async () => {
  const mock = await startMock();
  mock.apply(twoApiServers);
  const { provider } = startProvider(tokenAccess(mock));
  await waitFor("the watch", () => mock.openWatches === 1);

  mock.dropWatches();

  await waitFor("the failure", () => provider.health.failing);
  expect(provider.health.lastError).toBe(
    `Kubernetes watch of ${mock.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices failed while reading the response: connection reset by the peer (ECONNRESET)`,
  );
});

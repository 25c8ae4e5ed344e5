import { afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PROVIDER_HELP } from "../src/provider-flags.ts";
import { backendId, DnsProvider, type DnsProviderOptions } from "../src/providers/dns-provider.ts";
import { TestClient } from "./support/backends.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import { Dnsmasq, dnsmasqInstalled } from "./support/dnsmasq.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const NAME = "api.cluster.test";

if (!dnsmasqInstalled()) {
  console.warn("dns-provider tests skipped: dnsmasq is not installed (Debian package dnsmasq-base; .ci/run installs it)");
}
const dnsTest = dnsmasqInstalled() ? test : test.skip;

/**
 * Greeting echo backends on several loopback addresses that share one port, as the
 * addresses of one DNS name do. Each greets with its host address.
 */
function startSharedPortBackends(hosts: string[]): number {
  for (let attempt = 0; attempt < 10; attempt++) {
    const listeners: TCPSocketListener<undefined>[] = [];
    try {
      let port = 0;
      for (const host of hosts) {
        const listener = Bun.listen({
          hostname: host,
          port,
          socket: {
            open: (socket: Socket<undefined>) => void socket.write(`${host}\n`),
            data: (socket: Socket<undefined>, chunk: Buffer) => void socket.write(chunk),
          },
        });
        listeners.push(listener);
        port = listener.port;
      }
      cleanup.push(() => listeners.forEach((listener) => listener.stop(true)));

      return port;
    } catch {
      // Another process uses the port on one of the later addresses, so pick a new port.
      listeners.forEach((listener) => listener.stop(true));
    }
  }
  throw new Error(`no port free on every one of ${hosts.join(", ")}`);
}

async function startDns(hosts: string[], srv: string[] = []): Promise<Dnsmasq> {
  const dns = await Dnsmasq.start(hosts, srv);
  cleanup.push(() => dns.stop());

  return dns;
}

/** Starts a balancer fed by a DNS provider built with the scenario's logger. */
async function startScenario(options: Omit<DnsProviderOptions, "logger">): Promise<{ scenario: BalancerScenario; provider: DnsProvider }> {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  const provider = new DnsProvider({ ...options, logger: scenario.log.logger });
  await scenario.start(provider);

  return { scenario, provider };
}

/** Connects clients until one greets from each host; returns them by host. */
async function connectEachHost(scenario: BalancerScenario, hosts: string[]): Promise<Map<string, TestClient>> {
  const byHost = new Map<string, TestClient>();
  for (let attempt = 0; attempt < hosts.length * 4 && byHost.size < hosts.length; attempt++) {
    const client = await TestClient.connect(scenario.port);
    scenario.clients.push(client);
    await waitFor("greeting", () => client.firstLine !== "" || client.closed);
    if (hosts.includes(client.firstLine) && !byHost.has(client.firstLine)) {
      byHost.set(client.firstLine, client);
    } else {
      client.close();
    }
  }
  expect([...byHost.keys()].sort()).toEqual([...hosts].sort());

  return byHost;
}

function expectedSet(port: number, hosts: string[]): string {
  return hosts
    .map((host) => `${backendId(NAME, host)}=${host}:${port}`)
    .sort()
    .join(",");
}

dnsTest("DnsProvider follows answers that change", async () => {
  const port = startSharedPortBackends(["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
  const dns = await startDns([`127.0.0.2 ${NAME}`, `127.0.0.3 ${NAME}`]);
  const { scenario } = await startScenario({ name: NAME, port, servers: [dns.server], intervalMs: 100 });
  await waitFor("first answer", () => scenario.server.set.size === 2);
  expect(scenario.running).toBe(expectedSet(port, ["127.0.0.2", "127.0.0.3"]));
  const clients = await connectEachHost(scenario, ["127.0.0.2", "127.0.0.3"]);

  await dns.setHosts([`127.0.0.3 ${NAME}`, `127.0.0.4 ${NAME}`]);

  await waitFor("new answer applied", () => scenario.running === expectedSet(port, ["127.0.0.3", "127.0.0.4"]));
  await waitFor("client of 127.0.0.2 to close", () => clients.get("127.0.0.2")!.closed);
  await BalancerScenario.echo(clients.get("127.0.0.3")!, "kept through the change");
  expect(clients.get("127.0.0.3")!.closed).toBe(false);
});

dnsTest("DnsProvider keeps the last answer while the name is gone", async () => {
  const port = startSharedPortBackends(["127.0.0.2", "127.0.0.3"]);
  const dns = await startDns([`127.0.0.2 ${NAME}`]);
  const { scenario, provider } = await startScenario({ name: NAME, port, servers: [dns.server], intervalMs: 100 });
  await waitFor("first answer", () => scenario.server.set.size === 1);
  const clients = await connectEachHost(scenario, ["127.0.0.2"]);

  await dns.setHosts([]);
  const failuresBefore = provider.failures;
  await waitFor("three failed lookups", () => provider.failures >= failuresBefore + 3);

  expect(scenario.running).toBe(expectedSet(port, ["127.0.0.2"]));
  const warnings = scenario.log.withMessage("DNS lookup failed; keeping the last answer");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.name).toBe(NAME);
  expect(warnings[0]!.resolver).toBe(dns.server);
  await BalancerScenario.echo(clients.get("127.0.0.2")!, "served from the last answer");

  await dns.setHosts([`127.0.0.2 ${NAME}`, `127.0.0.3 ${NAME}`]);

  await waitFor("answer back", () => scenario.running === expectedSet(port, ["127.0.0.2", "127.0.0.3"]));
  expect(scenario.log.withMessage("DNS lookup recovered").length).toBe(1);
  await BalancerScenario.echo(clients.get("127.0.0.2")!, "still open after recovery");
});

dnsTest("DnsProvider keeps the last answer while the server is down", async () => {
  const port = startSharedPortBackends(["127.0.0.2"]);
  const dns = await startDns([`127.0.0.2 ${NAME}`]);
  const { scenario, provider } = await startScenario({ name: NAME, port, servers: [dns.server], intervalMs: 100, timeoutMs: 200 });
  await waitFor("first answer", () => scenario.server.set.size === 1);

  await dns.stop();
  await waitFor("two failed lookups", () => provider.failures >= 2);

  expect(scenario.running).toBe(expectedSet(port, ["127.0.0.2"]));
  expect(scenario.log.withMessage("DNS lookup failed; keeping the last answer").length).toBe(1);
});

dnsTest("DnsProvider warns again when a failing lookup fails for a new cause", async () => {
  const port = startSharedPortBackends(["127.0.0.2"]);
  const dns = await startDns([`127.0.0.2 ${NAME}`]);
  const { scenario, provider } = await startScenario({ name: NAME, port, servers: [dns.server], intervalMs: 100, timeoutMs: 200 });
  await waitFor("first answer", () => scenario.server.set.size === 1);

  await dns.setHosts([]);
  await waitFor("two failed lookups of the empty answer", () => provider.failures >= 2);
  await dns.stop();
  const failuresAtStop = provider.failures;
  await waitFor("two failed lookups of the stopped server", () => provider.failures >= failuresAtStop + 2);

  const warnings = scenario.log.withMessage("DNS lookup failed; keeping the last answer");
  expect(warnings.length).toBe(2);
  expect(warnings[0]!.failedLookups).toBeUndefined();
  expect(warnings[1]!.failedLookups).toBeGreaterThan(1);
  expect(warnings[1]!.err).not.toBe(warnings[0]!.err);
  expect(scenario.running).toBe(expectedSet(port, ["127.0.0.2"]));
});

dnsTest("DnsProvider reordered answer disturbs nothing", async () => {
  const port = startSharedPortBackends(["127.0.0.2", "127.0.0.3"]);
  const dns = await startDns([`127.0.0.2 ${NAME}`, `127.0.0.3 ${NAME}`]);
  const { scenario, provider } = await startScenario({ name: NAME, port, servers: [dns.server], intervalMs: 100 });
  await waitFor("first answer", () => scenario.server.set.size === 2);
  const clients = await connectEachHost(scenario, ["127.0.0.2", "127.0.0.3"]);
  const changesBefore = scenario.server.stats.setChanges;

  await dns.setHosts([`127.0.0.3 ${NAME}`, `127.0.0.2 ${NAME}`]);
  const failuresBefore = provider.failures;
  // Lookups of the reordered file, on top of the ones the interval runs.
  for (let i = 0; i < 3; i++) {
    expect(await provider.lookupOnce()).toBe(true);
  }

  expect(provider.failures).toBe(failuresBefore);
  expect(scenario.server.stats.setChanges).toBe(changesBefore);
  for (const [host, client] of clients) {
    await BalancerScenario.echo(client, `${host} undisturbed`);
    expect(client.closed).toBe(false);
  }
});

dnsTest("DnsProvider resolves SRV records", async () => {
  const port = startSharedPortBackends(["127.0.0.2", "127.0.0.3"]);
  const dns = await startDns([`127.0.0.2 api-1.cluster.test`, `127.0.0.3 api-2.cluster.test`], [
    `_api._tcp.cluster.test,api-1.cluster.test,${port}`,
    `_api._tcp.cluster.test,api-2.cluster.test,${port}`,
  ]);
  const { scenario, provider } = await startScenario({ name: "_api._tcp.cluster.test", srv: true, servers: [dns.server], intervalMs: 100 });

  await waitFor("SRV answer", () => scenario.server.set.size === 2);

  expect(provider.name).toBe("dns-srv:_api._tcp.cluster.test");
  expect(scenario.running).toBe(
    [`api-1.cluster.test:${port}@127.0.0.2=127.0.0.2:${port}`, `api-2.cluster.test:${port}@127.0.0.3=127.0.0.3:${port}`].join(","),
  );
  await connectEachHost(scenario, ["127.0.0.2", "127.0.0.3"]);
});

dnsTest("DnsProvider keeps an SRV target that stops resolving", async () => {
  const port = startSharedPortBackends(["127.0.0.2", "127.0.0.3"]);
  const srv = [`_api._tcp.cluster.test,api-1.cluster.test,${port}`, `_api._tcp.cluster.test,api-2.cluster.test,${port}`];
  const dns = await startDns([`127.0.0.2 api-1.cluster.test`, `127.0.0.3 api-2.cluster.test`], srv);
  const clock = new FakeClock();
  const { scenario, provider } = await startScenario({ name: "_api._tcp.cluster.test", srv: true, servers: [dns.server], intervalMs: 60_000, holdMs: 30_000, clock });
  const bothTargets = [`api-1.cluster.test:${port}@127.0.0.2=127.0.0.2:${port}`, `api-2.cluster.test:${port}@127.0.0.3=127.0.0.3:${port}`].join(",");
  await waitFor("SRV answer", () => scenario.server.set.size === 2);
  const clients = await connectEachHost(scenario, ["127.0.0.2", "127.0.0.3"]);

  // api-2.cluster.test is now NXDOMAIN, while the SRV answer still lists it.
  await dns.setHosts([`127.0.0.2 api-1.cluster.test`]);
  expect(await provider.lookupOnce()).toBe(true);
  clock.advance(20_000);
  expect(await provider.lookupOnce()).toBe(true);

  expect(scenario.running).toBe(bothTargets);
  await BalancerScenario.echo(clients.get("127.0.0.3")!, "kept while the target does not resolve");
  const warnings = scenario.log.withMessage("SRV target does not resolve; keeping its last addresses");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.target).toBe(`api-2.cluster.test:${port}`);
  expect(warnings[0]!.err).toBe("the name api-2.cluster.test does not exist or has no A or AAAA record");
  expect(warnings[0]!.keptTargets).toBe(`127.0.0.3:${port}`);
  expect(warnings[0]!.holdMs).toBe(30_000);

  // Past the hold, the kept addresses expire.
  clock.advance(10_000);
  expect(await provider.lookupOnce()).toBe(true);

  expect(scenario.running).toBe(`api-1.cluster.test:${port}@127.0.0.2=127.0.0.2:${port}`);
  await waitFor("client of api-2 to close", () => clients.get("127.0.0.3")!.closed);
  const expired = scenario.log.withMessage("SRV target still does not resolve after the hold; removing its backends");
  expect(expired.length).toBe(1);
  expect(expired[0]!.target).toBe(`api-2.cluster.test:${port}`);
  expect(expired[0]!.failedLookups).toBe(3);

  await dns.setHosts([`127.0.0.2 api-1.cluster.test`, `127.0.0.3 api-2.cluster.test`]);
  expect(await provider.lookupOnce()).toBe(true);

  expect(scenario.running).toBe(bothTargets);
  const recovered = scenario.log.withMessage("SRV target resolves again");
  expect(recovered.length).toBe(1);
  expect(recovered[0]!.target).toBe(`api-2.cluster.test:${port}`);
  expect(recovered[0]!.failedLookups).toBe(3);
  expect(provider.failures).toBe(0);
});

dnsTest("DnsProvider names an SRV target that never resolved", async () => {
  const port = startSharedPortBackends(["127.0.0.2"]);
  const srv = [`_api._tcp.cluster.test,api-1.cluster.test,${port}`, `_api._tcp.cluster.test,nowhere.cluster.test,${port}`];
  const dns = await startDns([`127.0.0.2 api-1.cluster.test`], srv);
  const { scenario, provider } = await startScenario({ name: "_api._tcp.cluster.test", srv: true, servers: [dns.server], intervalMs: 60_000 });
  await waitFor("SRV answer", () => scenario.server.set.size === 1);

  expect(await provider.lookupOnce()).toBe(true);

  expect(scenario.running).toBe(`api-1.cluster.test:${port}@127.0.0.2=127.0.0.2:${port}`);
  const warnings = scenario.log.withMessage("SRV target does not resolve; it has no backends");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.target).toBe(`nowhere.cluster.test:${port}`);
  expect(warnings[0]!.err).toBe("the name nowhere.cluster.test does not exist or has no A or AAAA record");
});

dnsTest("DnsProvider turns AAAA answers into IPv6 targets", async () => {
  const dns = await startDns([`127.0.0.2 ${NAME}`, `::1 ${NAME}`]);
  const { scenario } = await startScenario({ name: NAME, port: 6443, servers: [dns.server], intervalMs: 60_000 });

  await waitFor("answer", () => scenario.server.set.size === 2);

  expect(scenario.running).toBe(`${NAME}@127.0.0.2=127.0.0.2:6443,${NAME}@::1=[::1]:6443`);
});

dnsTest("DnsProvider uses A records when AAAA is refused", async () => {
  // With no upstream server, dnsmasq answers A from --address and refuses the AAAA query.
  const refusedName = "api.test.internal";
  const dns = await Dnsmasq.start([], [], [`--address=/${refusedName}/127.0.0.2`]);
  cleanup.push(() => dns.stop());
  const { scenario, provider } = await startScenario({ name: refusedName, port: 6443, servers: [dns.server], intervalMs: 60_000 });

  await waitFor("answer", () => scenario.server.set.size === 1);
  expect(await provider.lookupOnce()).toBe(true);

  expect(scenario.running).toBe(`${refusedName}@127.0.0.2=127.0.0.2:6443`);
  expect(provider.failures).toBe(0);
  const warnings = scenario.log.withMessage("DNS AAAA query failed; using the other records of the name");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.err).toBe(`the DNS server refused the AAAA query for ${refusedName} (EREFUSED)`);
  expect(scenario.log.withMessage("DNS lookup failed; keeping the last answer").length).toBe(0);
});

dnsTest("DnsProvider rejects an answer over the cap", async () => {
  const dns = await startDns([`127.0.0.2 ${NAME}`, `127.0.0.3 ${NAME}`, `127.0.0.4 ${NAME}`]);
  const { scenario, provider } = await startScenario({ name: NAME, port: 6443, servers: [dns.server], intervalMs: 60_000, maxBackends: 2 });

  await waitFor("a failed lookup", () => provider.failures >= 1);

  expect(scenario.server.set.size).toBe(0);
  expect(provider.health.lastError).toBe("the DNS answer has 3 addresses, more than the 2 backends a provider may publish");
});

dnsTest("DnsProvider fails when every query fails", async () => {
  // dnsmasq refuses both A and AAAA of a name it has no records for and no upstream server to ask.
  const dns = await Dnsmasq.start([]);
  cleanup.push(() => dns.stop());
  const { scenario, provider } = await startScenario({ name: "api.test.internal", port: 6443, servers: [dns.server], intervalMs: 60_000 });

  await waitFor("a failed lookup", () => provider.failures >= 1);

  expect(scenario.server.set.size).toBe(0);
  // No answer came before, so there is none to keep.
  expect(scenario.log.withMessage("DNS lookup failed; keeping the last answer").length).toBe(0);
  const warnings = scenario.log.withMessage("DNS lookup failed; the name's backends stay as they are until a lookup succeeds");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.resolver).toBe(dns.server);
  expect(warnings[0]!.err).toBe(
    "the DNS server refused the A query for api.test.internal (EREFUSED), and the DNS server refused the AAAA query for api.test.internal (EREFUSED)",
  );
  expect(warnings[0]!.fix).toBeUndefined();
});

test("DnsProvider words a query timeout plainly", async () => {
  // A UDP socket on loopback that reads queries and never answers them.
  const silent = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  cleanup.push(() => silent.close());
  const { scenario, provider } = await startScenario({ name: NAME, port: 6443, servers: [`127.0.0.1:${silent.port}`], intervalMs: 60_000, timeoutMs: 100 });

  await waitFor("a failed lookup", () => provider.failures >= 1);

  const warnings = scenario.log.withMessage("DNS lookup failed; the name's backends stay as they are until a lookup succeeds");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.resolver).toBe(`127.0.0.1:${silent.port}`);
  expect(warnings[0]!.err).toBe(`the A query for ${NAME} timed out (ETIMEOUT), and the AAAA query for ${NAME} timed out (ETIMEOUT)`);
  expect(warnings[0]!.fix).toContain("--dns-resolver");
});

test("DnsProvider names the fix for a closed resolver port", async () => {
  // A UDP port that was free a moment ago, so nothing listens there.
  const probe = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const closedPort = probe.port;
  probe.close();
  const { scenario, provider } = await startScenario({ name: NAME, port: 6443, servers: [`127.0.0.1:${closedPort}`], intervalMs: 60_000, timeoutMs: 200 });

  await waitFor("a failed lookup", () => provider.failures >= 1);

  const warnings = scenario.log.withMessage("DNS lookup failed; the name's backends stay as they are until a lookup succeeds");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.err).toMatch(/ECONNREFUSED|ETIMEOUT/);
  expect(warnings[0]!.fix).toBe("check that a DNS server listens at the resolver address, and set it with --dns-resolver or dns.resolver");
});

test.each([
  ["api.internal", "10.0.0.1", "api.internal@10.0.0.1"],
  ["api.internal", "fd00::1", "api.internal@fd00::1"],
  ["_api._tcp.example", "10.0.0.1", "api._tcp.example@10.0.0.1"],
])("backendId of %s and %s", (name, ip, id) => {
  expect(backendId(name, ip)).toBe(id);
});

test("backendId shortens a long name with a hash", () => {
  const long = `${"a".repeat(60)}.${"b".repeat(60)}.example`;

  const id = backendId(long, "10.0.0.1");

  expect(id.length).toBeLessThanOrEqual(128);
  expect(id).toEndWith("@10.0.0.1");
  expect(id).not.toBe(backendId(`${long}x`, "10.0.0.1"));
});

test("DnsProvider needs a port without SRV", () => {
  expect(() => new DnsProvider({ name: NAME })).toThrow("a port is required unless srv is set");
});

test("DNS docs name resolv.conf and hosts", () => {
  const providers = readFileSync(join(import.meta.dir, "..", "docs", "providers.md"), "utf8");

  // The provider sends DNS queries only: without --dns-resolver they go to /etc/resolv.conf's servers.
  expect(providers).toContain("queries go to the name servers listed in `/etc/resolv.conf`");
  expect(providers).toContain("does not read `/etc/hosts`");
  expect(PROVIDER_HELP).toContain("/etc/hosts is not read");
  expect(PROVIDER_HELP).toContain("servers in /etc/resolv.conf");
});

dnsTest("DnsProvider queries again after an empty answer", async () => {
  // A name with only a TXT record: dnsmasq answers its A and AAAA queries with NOERROR and no records.
  const txtOnly = "txt-only.cluster.test";
  const dns = await Dnsmasq.start([], [], [`--txt-record=${txtOnly},tinylb`]);
  cleanup.push(() => dns.stop());
  const { scenario, provider } = await startScenario({ name: txtOnly, port: 6443, servers: [dns.server], intervalMs: 100 });
  await waitFor("two failed lookups", () => provider.failures >= 2);
  expect(provider.health.lastError).toBe(`the name ${txtOnly} does not exist or has no A or AAAA record`);

  await dns.setHosts([`127.0.0.2 ${txtOnly}`]);

  await waitFor("the new record", () => scenario.server.set.size === 1);
  expect(scenario.running).toBe(`${txtOnly}@127.0.0.2=127.0.0.2:6443`);
  expect(scenario.log.withMessage("DNS lookup recovered").length).toBe(1);
});

dnsTest("DnsProvider skips an unspecified address", async () => {
  const dns = await startDns([`0.0.0.0 ${NAME}`, `127.0.0.2 ${NAME}`]);
  const { scenario, provider } = await startScenario({ name: NAME, port: 6443, servers: [dns.server], intervalMs: 60_000 });

  await waitFor("answer", () => scenario.server.set.size === 1);
  expect(scenario.running).toBe(`${NAME}@127.0.0.2=127.0.0.2:6443`);
  expect(provider.failures).toBe(0);
  // Later lookups skip the address again without another warning.
  expect(await provider.lookupOnce()).toBe(true);
  expect(await provider.lookupOnce()).toBe(true);
  const warnings = scenario.log.withMessage("skipping a DNS address that is not a valid backend target");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.address).toBe("0.0.0.0");
});

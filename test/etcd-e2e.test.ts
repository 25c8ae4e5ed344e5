import { afterEach, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EtcdCluster, type EtcdMember, etcdctl } from "./support/etcd-cluster.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

// A real three-member etcd cluster on loopback addresses behind the compiled tinylb, driven
// by etcdctl through the balancer. tinylb's backend set comes from its etcd provider, which
// follows MEMBERS_PREFIX in the same cluster, and its http probes GET each member's /health.

/** Per-test deadline: the test starts three etcd members and the binary, and restarts a member. */
const E2E_TIMEOUT_MS = 120_000;
const MEMBERS_PREFIX = "/tinylb/members/";
/** Deadline of the cleanup: each etcd member gets up to 10 s to stop before SIGKILL. */
const CLEANUP_TIMEOUT_MS = 40_000;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
}, CLEANUP_TIMEOUT_MS);

/** Returns the `header.member_id` of etcdctl's JSON output as a string: the ids do not fit a JS number. */
function memberIdOf(json: string): string {
  const match = /"member_id":(\d+)/.exec(json);
  if (match === null) {
    throw new Error(`no member_id in etcdctl output: ${json}`);
  }

  return match[1]!;
}

/** Maps each member id (decimal, as etcdctl prints it) to the member name. */
async function memberNames(endpoints: string): Promise<Map<string, string>> {
  const output = await etcdctl(endpoints, ["member", "list", "-w", "json"]);
  const names = new Map<string, string>();
  for (const match of output.matchAll(/"ID":(\d+),"name":"([^"]+)"/g)) {
    names.set(match[1]!, match[2]!);
  }

  return names;
}

/** A long-running `etcdctl watch` through the balancer, with its JSON output collected. */
class WatchProcess {
  output = "";
  readonly child: Subprocess<"ignore", "pipe", "pipe">;

  constructor(endpoint: string, args: string[]) {
    this.child = Bun.spawn(["etcdctl", "--endpoints", endpoint, "watch", "-w", "json", ...args], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ETCDCTL_API: "3" },
    });
    void this.#collect(this.child.stdout);
    void this.#collect(this.child.stderr);
  }

  /** Member id of the last watch response that carries an event with `value`. */
  memberIdFor(value: string): string | undefined {
    const encoded = Buffer.from(value).toString("base64");
    const line = this.output.split("\n").findLast((candidate) => candidate.includes(`"value":"${encoded}"`));

    return line === undefined ? undefined : memberIdOf(line);
  }

  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    await this.child.exited;
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.output += decoder.decode(chunk, { stream: true });
    }
  }
}

async function startCluster(): Promise<EtcdCluster> {
  const cluster = await EtcdCluster.start(3);
  cleanup.push(() => cluster.stop());
  for (const member of cluster.members) {
    await etcdctl(cluster.endpoints, ["put", `${MEMBERS_PREFIX}${member.name}`, member.clientAddress]);
  }

  return cluster;
}

async function startTinylb(cluster: EtcdCluster): Promise<{ tinylb: TinylbProcess; endpoint: string }> {
  const configPath = join(cluster.dir, "tinylb.yaml");
  const endpoints = cluster.members.map((member) => member.clientUrl);
  writeFileSync(
    configPath,
    [
      "listen: 127.0.0.1:0",
      'admin: "off"',
      "shutdownGrace: 0s",
      "etcd:",
      `  endpoints: [${endpoints.join(", ")}]`,
      `  prefix: ${MEMBERS_PREFIX}`,
      "probe:",
      "  kind: http",
      "  path: /health",
      "  interval: 500ms",
      "  timeout: 500ms",
      "",
    ].join("\n"),
  );
  cleanup.push(() => rmSync(configPath, { force: true }));

  const tinylb = TinylbProcess.start(["--config", configPath, "--log-level", "debug"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  // Backends start out healthy, so the probes log only later flips.
  await tinylb.waitForLog(/backend set changed .*count=3/, 20_000);

  return { tinylb, endpoint: `127.0.0.1:${listenedPort(tinylb.stderr)}` };
}

/** Runs `count` puts and as many gets through the balancer; returns the member name that served each. */
async function putAndGet(endpoint: string, names: Map<string, string>, count: number, tag: string): Promise<string[]> {
  const served: string[] = [];
  for (let i = 0; i < count; i++) {
    const key = `/e2e/${tag}/${i}`;
    served.push(names.get(memberIdOf(await etcdctl(endpoint, ["put", key, `value-${i}`, "-w", "json"])))!);

    const got = await etcdctl(endpoint, ["get", key, "-w", "json"]);
    expect(got).toContain(`"value":"${Buffer.from(`value-${i}`).toString("base64")}"`);
    served.push(names.get(memberIdOf(got))!);
  }

  return served;
}

/** Waits until every running member reports the same leader, one of them; a stopped leader causes an election. */
async function waitForLeader(running: EtcdMember[], names: Map<string, string>): Promise<void> {
  const endpoints = running.map((member) => member.clientUrl).join(",");
  const runningNames = running.map((member) => member.name);
  await waitFor("a leader among the running members", async () => {
    try {
      const leaders = [...(await etcdctl(endpoints, ["endpoint", "status", "-w", "json"])).matchAll(/"leader":(\d+)/g)].map((match) => match[1]!);

      return leaders.length === running.length && new Set(leaders).size === 1 && runningNames.includes(names.get(leaders[0]!) ?? "");
    } catch {
      return false;
    }
  }, 20_000);
}

function countBy(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) {
    counts[name] = (counts[name] ?? 0) + 1;
  }

  return counts;
}

test(
  "etcd cluster behind tinylb serves etcdctl",
  async () => {
    const cluster = await startCluster();
    const names = await memberNames(cluster.endpoints);
    const { tinylb, endpoint } = await startTinylb(cluster);

    // Puts and gets spread over the three members: each etcdctl run is one connection.
    const spread = countBy(await putAndGet(endpoint, names, 6, "spread"));
    expect(Object.keys(spread).sort()).toEqual(["member-1", "member-2", "member-3"]);
    for (const member of cluster.members) {
      expect(spread[member.name]).toBe(4);
    }

    // An open watch through the balancer, and the member that serves it.
    const watch = new WatchProcess(endpoint, ["/e2e/watched"]);
    cleanup.push(() => watch.stop());
    await waitFor("the watch to be served", async () => {
      await etcdctl(endpoint, ["put", "/e2e/watched", "before"]);

      return watch.memberIdFor("before") !== undefined;
    }, 20_000);
    const watchMember = cluster.members.find((member) => member.name === names.get(watch.memberIdFor("before")!))!;

    // The watch's member leaves the set: tinylb closes its connections, and the watch is re-established through the others.
    await etcdctl(cluster.endpoints, ["del", `${MEMBERS_PREFIX}${watchMember.name}`]);
    await tinylb.waitForLog(new RegExp(`closed connections of removed target .*backend=${watchMember.name} target=${watchMember.clientAddress.replaceAll(".", "\\.")} closed=[1-9]`), 20_000);
    await waitFor("the watch to see the put after the cut", async () => {
      await etcdctl(endpoint, ["put", "/e2e/watched", "after"]);

      return watch.memberIdFor("after") !== undefined;
    }, 30_000);
    const resumedOn = names.get(watch.memberIdFor("after")!);
    expect(resumedOn).not.toBe(watchMember.name);
    // The same etcdctl process saw both values: its client re-established the watch on its own.
    expect(watch.child.exitCode).toBeNull();

    // A new watch from revision 1 replays both values through the remaining members.
    const history = new WatchProcess(endpoint, ["/e2e/watched", "--rev", "1"]);
    cleanup.push(() => history.stop());
    await waitFor("the new watch to replay both values", () => history.memberIdFor("before") !== undefined && history.memberIdFor("after") !== undefined, 20_000);
    expect(names.get(history.memberIdFor("after")!)).not.toBe(watchMember.name);

    // The member comes back into the set.
    await etcdctl(cluster.endpoints, ["put", `${MEMBERS_PREFIX}${watchMember.name}`, watchMember.clientAddress]);
    await tinylb.waitForLog(/backend set changed .*count=3/, 20_000);

    // A stopped member is routed around: its probes fail and every request goes to the others.
    const stopped: EtcdMember = cluster.members[1]!;
    await stopped.stop();
    await tinylb.waitForLog(new RegExp(`backend is unhealthy .*backend=${stopped.name}`), 20_000);
    await waitForLeader(cluster.members.filter((member) => member !== stopped), names);
    const whileDown = countBy(await putAndGet(endpoint, names, 6, "down"));
    expect(whileDown[stopped.name]).toBeUndefined();
    expect((whileDown["member-1"] ?? 0) + (whileDown["member-3"] ?? 0) + (whileDown["member-2"] ?? 0)).toBe(12);

    // Restarted with its data dir, it rejoins, turns healthy and serves again. A member that
    // came back into the set logged a healthy line after its first probe, so count the lines.
    const healthyLine = new RegExp(`backend is healthy .*backend=${stopped.name}\\b`, "g");
    const healthyBefore = tinylb.stderr.match(healthyLine)?.length ?? 0;
    stopped.start();
    await stopped.waitUntilHealthy();
    await waitFor(`a new healthy line of ${stopped.name}`, () => (tinylb.stderr.match(healthyLine)?.length ?? 0) > healthyBefore, 20_000);
    const afterRestart = countBy(await putAndGet(endpoint, names, 6, "restarted"));
    expect(afterRestart[stopped.name]).toBeGreaterThanOrEqual(1);

    expect(await tinylb.stop()).toBe(0);
  },
  E2E_TIMEOUT_MS,
);

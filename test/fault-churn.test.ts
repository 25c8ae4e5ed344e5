import { expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EtcdCluster } from "./support/etcd-cluster.ts";
import { EchoBackend, FaultProcess, type TransferResult, transfer } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const KEPT = ["kept-1", "kept-2"];
const CHURNED = ["churn-1", "churn-2", "churn-3", "churn-4"];
const CHURN_MS = 3000;
const CHANGES_PER_SECOND = 30;
const TRANSFERS_IN_FLIGHT = 100;
const MAX_TRANSFERS = 600;
const TRANSFER_BYTES = 128 * 1024;

type Provider = "file" | "admin" | "etcd";

const ETCD_PREFIX = "/tinylb-fault/backends/";
const etcdInstalled = Bun.spawnSync(["etcd", "--version"], { stdout: "ignore", stderr: "ignore" }).success;
if (!etcdInstalled) {
  console.log("skipping set churn through etcd: etcd (Debian package etcd-server) is not installed");
}

/** Replaces the backends under ETCD_PREFIX in one transaction through etcd's v3 JSON gateway. */
async function etcdReplace(endpoint: string, set: { id: string; target: string }[], all: string[]): Promise<void> {
  const base64 = (text: string): string => Buffer.from(text).toString("base64");
  const ids = new Set(set.map((backend) => backend.id));
  const success = [
    ...set.map((backend) => ({ requestPut: { key: base64(`${ETCD_PREFIX}${backend.id}`), value: base64(backend.target) } })),
    ...all.filter((id) => !ids.has(id)).map((id) => ({ requestDeleteRange: { key: base64(`${ETCD_PREFIX}${id}`) } })),
  ];
  const response = await fetch(`${endpoint}/v3/kv/txn`, { method: "POST", body: JSON.stringify({ success }) });
  if (!response.ok) {
    throw new Error(`etcd transaction failed: ${response.status} ${await response.text()}`);
  }
}

/** Picks a backend set: the kept backends always, each churned one with a chance of one half. */
function randomSet(targets: Map<string, string>, random: () => number): { id: string; target: string }[] {
  return [...KEPT, ...CHURNED.filter(() => random() < 0.5)].map((id) => ({ id, target: targets.get(id)! }));
}

/** A small deterministic generator, so a failing run can be repeated with its seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;

  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;

    return state / 2 ** 32;
  };
}

async function adminRequest(socketPath: string, method: string, path: string, body?: unknown): Promise<Response> {
  return await fetch(`http://localhost${path}`, {
    unix: socketPath,
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
}

/** Opens a client that reads the greeting and then idles; it records when it was closed. */
async function idleClient(port: number) {
  const state = { received: "", closed: false };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_socket, chunk) => {
        state.received += chunk.toString("latin1");
      },
      close: () => {
        state.closed = true;
      },
      error() {},
    },
  });
  await waitFor("greeting", () => state.received.includes("\n"));

  return { socket, state, id: state.received.slice(0, state.received.indexOf("\n")) };
}

test.each(["file", "admin", "etcd"] as Provider[])("set churn through the %s provider", async (provider) => {
  if (provider === "etcd" && !etcdInstalled) {
    return;
  }
  const seed = Date.now();
  const random = seededRandom(seed);
  const backends = new Map([...KEPT, ...CHURNED].map((id) => [id, new EchoBackend(id)]));
  const targets = new Map([...backends].map(([id, backend]) => [id, backend.target]));
  const folder = mkdtempSync(join(tmpdir(), "tinylb-churn-"));
  const configPath = join(folder, "tinylb.json");
  const adminPath = join(folder, "admin.sock");
  const initial = [...KEPT, ...CHURNED].map((id) => ({ id, target: targets.get(id)! }));
  const etcd = provider === "etcd" ? await EtcdCluster.start(1) : undefined;
  const etcdEndpoint = etcd?.members[0]!.clientUrl ?? "";
  const allIds = [...KEPT, ...CHURNED];
  const fileConfig = provider === "etcd" ? { etcd: { endpoints: [etcdEndpoint], prefix: ETCD_PREFIX } } : { backends: provider === "file" ? initial : [] };
  writeFileSync(configPath, JSON.stringify(fileConfig));
  if (etcd !== undefined) {
    await etcdReplace(etcdEndpoint, initial, allIds);
  }
  const args = ["--listen", "127.0.0.1:0", "--admin", `unix:${adminPath}`];
  await using tinylb = new FaultProcess(provider === "admin" ? args : [...args, "--config", configPath]);
  try {
    const port = await tinylb.port();
    if (provider === "admin") {
      await waitFor("the admin API to take the first set", async () => {
        const response = await adminRequest(adminPath, "PUT", "/v1/backends", { backends: initial }).catch(() => undefined);

        return response?.status === 200;
      }, 10_000);
    }
    await waitFor("the admin API and every backend to be running", async () => {
      // The admin API starts after the listeners, so the first requests may find no socket yet.
      const response = await adminRequest(adminPath, "GET", "/v1/backends").catch(() => undefined);
      const status = (await response?.json()) as { backends: unknown[] } | undefined;

      return status?.backends.length === 6;
    }, 10_000);
    const idle = await Promise.all(Array.from({ length: 12 }, () => idleClient(port)));
    expect(new Set(idle.map((client) => client.id)).size).toBe(6);

    const apply = async (set: { id: string; target: string }[]): Promise<void> => {
      if (provider === "file") {
        writeFileSync(`${configPath}.next`, JSON.stringify({ backends: set }));
        renameSync(`${configPath}.next`, configPath);
        tinylb.process.kill("SIGHUP");
      } else if (provider === "etcd") {
        await etcdReplace(etcdEndpoint, set, allIds);
      } else {
        const response = await adminRequest(adminPath, "PUT", "/v1/backends", { backends: set });
        expect(response.status).toBe(200);
      }
    };

    // Transfers keep running while the set changes CHANGES_PER_SECOND times a second.
    const results: Promise<TransferResult>[] = [];
    let inFlight = 0;
    let churning = true;
    const load = (async () => {
      while (churning && results.length < MAX_TRANSFERS) {
        if (inFlight < TRANSFERS_IN_FLIGHT) {
          inFlight++;
          results.push(transfer(port, TRANSFER_BYTES, { greeted: true, timeoutMs: 30_000 }).finally(() => inFlight--));
        } else {
          await Bun.sleep(5);
        }
      }
    })();
    let last = initial;
    let changes = 0;
    const startedAt = performance.now();
    while (performance.now() - startedAt < CHURN_MS) {
      last = randomSet(targets, random);
      await apply(last);
      changes++;
      await Bun.sleep(1000 / CHANGES_PER_SECOND);
    }
    churning = false;
    await load;
    const finished = await Promise.all(results);
    const finalIds = last.map((backend) => backend.id).sort();
    console.log(`${provider}: ${changes} set changes in ${CHURN_MS} ms, ${finished.length} transfers; final set ${finalIds.join(",")}; seed ${seed}`);

    // Transfers to backends that never left are complete and intact; the others are intact or cut, never corrupted.
    const kept = finished.filter((result) => KEPT.includes(result.greeting));
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.filter((result) => !(result.ended && result.receivedHash === result.sentHash)).length).toBe(0);
    expect(finished.filter((result) => !result.prefixIntact).length).toBe(0);
    expect(finished.filter((result) => result.timedOut).length).toBe(0);
    // A cut transfer may still report "ended" here, because Bun 1.4.4 reports a reset that
    // arrives while the client is writing as an end of stream. The hash separates cut from clean.
    const cut = finished.filter((result) => !(result.ended && result.receivedHash === result.sentHash)).length;
    console.log(`${provider}: ${kept.length} transfers to kept backends intact; ${cut} of ${finished.length} transfers cut by a removal`);

    // The running set is the last one applied.
    await waitFor("the last set to be running", async () => {
      const status = (await (await adminRequest(adminPath, "GET", "/v1/backends")).json()) as { backends: { id: string }[] };

      return status.backends.map((backend) => backend.id).sort().join(",") === finalIds.join(",");
    }, 10_000);
    const seen = new Set<string>();
    for (let i = 0; i < 2 * finalIds.length; i++) {
      const client = await idleClient(port);
      seen.add(client.id);
      client.socket.end();
    }
    expect([...seen].sort()).toEqual(finalIds);

    // Idle connections to removed targets were closed; those to kept backends still echo.
    for (const client of idle) {
      if (!finalIds.includes(client.id)) {
        await waitFor(`idle client of removed ${client.id} to be closed`, () => client.state.closed, 5000);
      }
      if (KEPT.includes(client.id)) {
        expect(client.state.closed).toBe(false);
        client.socket.write("still here\n");
        await waitFor(`echo through ${client.id}`, () => client.state.received.includes("still here\n"));
      }
      client.socket.end();
    }
    expect(tinylb.running).toBe(true);
  } finally {
    for (const backend of backends.values()) {
      backend.stop();
    }
    await etcd?.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}, 120_000);

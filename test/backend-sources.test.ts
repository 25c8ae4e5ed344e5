import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAddress } from "../src/address.ts";
import { type BackendSources, startBackendSources } from "../src/backend-sources.ts";
import { parseArgs } from "../src/cli.ts";
import { ListenError } from "../src/listener.ts";
import { Server } from "../src/server.ts";
import { resolveSettings } from "../src/settings.ts";
import { EtcdCluster, etcdctl } from "./support/etcd-cluster.ts";
import { LogLines } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-sources-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

/** Starts the providers a command line requests, feeding a server that is never bound. */
async function start(argv: string[], adjust: (settings: ReturnType<typeof resolveSettings>) => void = () => {}): Promise<{ sources: BackendSources; server: Server; log: LogLines }> {
  const log = new LogLines();
  const cli = parseArgs(["--listen", "127.0.0.1:0", ...argv]);
  const settings = resolveSettings(cli);
  adjust(settings);
  const server = new Server({ listen: settings.listen, logger: log.logger });
  const sources = await startBackendSources(cli, settings, server, log.logger);
  cleanup.push(() => sources.stop());
  sources.startStateFile();

  return { sources, server, log };
}

/** Occupies a Unix socket path with a live listener, as another tinylb would. */
function occupiedSocket(): string {
  const path = join(tempDir(), "admin.sock");
  const listener = Bun.listen({ unix: path, socket: { data() {} } });
  cleanup.push(() => listener.stop(true));

  return path;
}

test("startBackendSources serves saved backends until DNS answers", async () => {
  const stateFile = join(tempDir(), "state.json");
  const provider = "dns:api.cluster.test:6443";
  writeFileSync(
    stateFile,
    JSON.stringify({
      version: 1,
      savedAt: "2026-12-01T00:00:00.000Z",
      backends: [
        { id: "api.cluster.test@10.0.0.1", target: "10.0.0.1:6443", provider },
        { id: "from-api", target: "10.0.0.9:6443", provider: "api" },
        { id: "from-etcd", target: "10.0.0.8:6443", provider: "etcd" },
      ],
    }),
  );

  // Nothing listens on 127.0.0.1:1, so every lookup fails and the seed keeps serving.
  const { sources, server, log } = await start(
    ["--state-file", stateFile, "--dns", "api.cluster.test:6443", "--dns-resolver", "127.0.0.1:1", "--admin", `unix:${join(tempDir(), "admin.sock")}`],
  );

  expect(server.set.describe()).toBe("api.cluster.test@10.0.0.1=10.0.0.1:6443,from-api=10.0.0.9:6443");
  expect(sources.union.providerOf("api.cluster.test@10.0.0.1")).toBe(provider);
  expect(sources.union.slots.find((slot) => slot.name === provider)?.published).toBe(false);
  expect(sources.api?.set.describe()).toBe("from-api=10.0.0.9:6443");
  const ignored = log.withMessage("saved backends of providers no longer configured are ignored");
  expect(ignored.length).toBe(1);
  expect(ignored[0]!.providers).toBe("etcd");
});

test("startBackendSources takes settings and backends from one read", async () => {
  const config = join(tempDir(), "tinylb.yaml");
  writeFileSync(config, "connectTimeout: 2s\nbackends:\n  - { id: a, target: 127.0.0.1:1 }\n");
  let settings: ReturnType<typeof resolveSettings> | undefined;

  // A save that lands after the settings were read, before the providers start.
  const { server, sources } = await start(["--config", config, "--admin", "off", "--no-watch-config"], (resolved) => {
    settings = resolved;
    writeFileSync(config, "connectTimeout: 5s\nbackends:\n  - { id: b, target: 127.0.0.1:2 }\n");
  });
  expect(settings?.connectTimeoutMs).toBe(2000);
  expect(server.set.describe()).toBe("a=127.0.0.1:1");

  // The next reload reads that save, its settings and its backends alike.
  expect(sources.reload()).toBe(true);
  expect(settings?.connectTimeoutMs).toBe(5000);
  expect(server.set.describe()).toBe("b=127.0.0.1:2");
});

test("startBackendSources applies the start-up publishes as one change", async () => {
  const config = join(tempDir(), "tinylb.yaml");
  writeFileSync(config, 'backends:\n  - { id: f, target: "10.0.0.2:1" }\n');

  const { server, log } = await start(["--config", config, "--backend", "s=10.0.0.1:1", "--admin", "off"]);

  expect(server.set.describe()).toBe("f=10.0.0.2:1,s=10.0.0.1:1");
  const changes = log.withMessage("backend set changed");
  expect(changes.length).toBe(1);
  expect(changes[0]!.provider).toBe("static,file");
});

test("startBackendSources names only providers with backends", async () => {
  const dir = tempDir();
  const config = join(dir, "tinylb.yaml");
  writeFileSync(config, 'backends:\n  - { id: f, target: "10.0.0.2:1" }\n');

  const { log } = await start(["--config", config, "--admin", `unix:${join(dir, "admin.sock")}`]);

  const changes = log.withMessage("backend set changed");
  expect(changes.length).toBe(1);
  expect(changes[0]!.provider).toBe("file");
});

test("startBackendSources warns when the default admin socket is taken", async () => {
  const path = occupiedSocket();

  const { sources, log } = await start(["--backend", "a=10.0.0.1:1"], (settings) => {
    settings.providers.admin = { kind: "unix", path };
    settings.providers.adminIsDefault = true;
  });
  await sources.startAdmin();

  expect(sources.admin).toBeUndefined();
  const warnings = log.withMessage("admin API not started; pass --admin ADDR to pick another address, or --admin off");
  expect(warnings.length).toBe(1);
  expect(String(warnings[0]!.err)).toContain("a listener already accepts on it");
});

test("startBackendSources fails when a given admin socket is taken", async () => {
  const path = occupiedSocket();

  const { sources } = await start(["--backend", "a=10.0.0.1:1", "--admin", `unix:${path}`]);

  await expect(sources.startAdmin()).rejects.toThrow(ListenError);
});

test("startBackendSources reload without a config file", async () => {
  const { sources, log } = await start(["--backend", "a=10.0.0.1:1", "--admin", "off"]);

  expect(sources.reload()).toBe(false);
  expect(log.withMessage("SIGHUP received but no --config file is set; nothing to reload").length).toBe(1);
});

// The server in these tests is never bound, so nothing listens on the listen addresses set
// below. They only decide which targets count as looping back.
test("startBackendSources skips saved backends that loop back", async () => {
  const stateFile = join(tempDir(), "state.json");
  writeFileSync(
    stateFile,
    JSON.stringify({
      version: 1,
      backends: [
        { id: "ok", target: "10.0.0.1:6443", provider: "api" },
        { id: "self", target: "[::ffff:127.0.0.1]:7443", provider: "api" },
      ],
    }),
  );

  const { sources, server, log } = await start(["--state-file", stateFile, "--admin", `unix:${join(tempDir(), "admin.sock")}`], (settings) => {
    settings.listen = [parseAddress("127.0.0.1:7443")];
  });

  expect(server.set.describe()).toBe("ok=10.0.0.1:6443");
  expect(sources.api?.set.describe()).toBe("ok=10.0.0.1:6443");
  const skipped = log.withMessage("skipped an invalid saved backend");
  expect(skipped.length).toBe(1);
  expect(skipped[0]!.id).toBe("self");
  expect(String(skipped[0]!.err)).toContain("which is tinylb's own listen address 127.0.0.1:7443");
});

test("startBackendSources skips etcd keys that loop back", async () => {
  const cluster = await EtcdCluster.start(1);
  cleanup.push(() => cluster.stop());
  const endpoint = cluster.members[0]!.clientUrl;
  await etcdctl(endpoint, ["put", "/lb/ok", "10.0.0.1:6443"]);
  await etcdctl(endpoint, ["put", "/lb/self", "[0:0::1]:7443"]);

  const { server, log } = await start(["--admin", "off"], (settings) => {
    settings.listen = [parseAddress("[::1]:7443")];
    settings.etcd = { endpoints: [endpoint], prefix: "/lb/" };
  });
  await waitFor("the etcd provider publishes", () => server.set.size > 0);
  await etcdctl(endpoint, ["put", "/lb/other", "10.0.0.2:6443"]);
  await waitFor("the etcd provider publishes the new key", () => server.set.size === 2);

  expect(server.set.describe()).toBe("ok=10.0.0.1:6443,other=10.0.0.2:6443");
  const skipped = log.withMessage("skipping a backend whose target is tinylb's own listen address");
  expect(skipped.length).toBe(1);
  expect(skipped[0]!.provider).toBe("etcd:/lb/");
  expect(skipped[0]!.backend).toBe("self");
  expect(String(skipped[0]!.err)).toEndWith("so its connections would loop back into tinylb; correct the etcd key's value to the backend's own address");
}, 60_000);

test("admin API rejects its own socket as a target", async () => {
  const socket = join(tempDir(), "admin.sock");
  const { sources } = await start(["--admin", `unix:${socket}`]);
  await sources.startAdmin();
  const put = (id: string, target: string): Promise<Response> =>
    fetch(`http://localhost/v1/backends/${id}`, { method: "PUT", body: JSON.stringify({ target }), unix: socket } as RequestInit);

  const response = await put("adm", `unix:${socket}`);

  expect(response.status).toBe(400);
  expect(((await response.json()) as { error: string }).error).toContain(`which is tinylb's own admin API address unix:${socket}`);
  expect(sources.api?.set.size).toBe(0);
});

test("startBackendSources skips etcd keys on control addresses", async () => {
  const cluster = await EtcdCluster.start(1);
  cleanup.push(() => cluster.stop());
  const endpoint = cluster.members[0]!.clientUrl;
  const socket = join(tempDir(), "admin.sock");
  await etcdctl(endpoint, ["put", "/lb/ok", "10.0.0.1:6443"]);
  await etcdctl(endpoint, ["put", "/lb/adm", `unix:${socket}`]);
  await etcdctl(endpoint, ["put", "/lb/metrics", "127.0.0.1:9100"]);

  const { server, log } = await start(["--admin", `unix:${socket}`, "--metrics", "127.0.0.1:9100"], (settings) => {
    settings.etcd = { endpoints: [endpoint], prefix: "/lb/" };
  });
  await waitFor("the etcd provider publishes", () => server.set.size > 0);

  expect(server.set.describe()).toBe("ok=10.0.0.1:6443");
  expect(log.withMessage("skipping a backend with a Unix socket target, which only flags, the config file and the admin API may set").map((line) => line.backend)).toEqual(["adm"]);
  expect(log.withMessage("skipping a backend whose target is tinylb's own admin API or metrics address").map((line) => line.backend)).toEqual(["metrics"]);
}, 60_000);

import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AdminRouteContext, routeAdminRequest, routeReadOnlyRequest } from "../src/admin-routes.ts";
import { AdminRequestError } from "../src/admin-request.ts";
import { parseArgs } from "../src/cli.ts";
import { loadConfigFile } from "../src/config.ts";
import { formatConfigView } from "../src/config-command.ts";
import { collectConfigView, type ConfigView, type SettingEntry } from "../src/config-view.ts";
import { resolveSettings } from "../src/settings.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-config-view-");

/** Writes a YAML config file named `name` from its lines and returns its path. */
function writeConfig(name: string, lines: string[]): string {
  const path = join(directory, name);
  writeFileSync(path, lines.join("\n") + "\n");

  return path;
}

/** Collects the view of `--config path` plus `flags`, as a balancer that never reloaded would. */
function viewOf(path: string, flags: string[] = []): ConfigView {
  const cli = parseArgs(["--config", path, ...flags]);
  const settings = resolveSettings(cli);

  return collectConfigView(settings, cli, { atStart: settings.file, applied: settings.file }, []);
}

function entry(view: ConfigView, key: string): SettingEntry | undefined {
  return view.settings.find((setting) => setting.key === key);
}

const BASE = ["listen: 127.0.0.1:7443", "backends:", "  - { id: api-1, target: 127.0.0.1:6443 }"];

test("config view names each source", () => {
  const path = writeConfig("sources.yaml", [...BASE, "connectTimeout: 2s", "probe: { kind: http, path: /readyz, fall: 2 }", "onUnhealthy: close"]);
  const view = viewOf(path, ["--probe-interval", "1s", "--keepalive", "10s"]);

  expect(view.configFile).toBe(path);
  expect(entry(view, "listen")).toEqual({ key: "listen", value: ["127.0.0.1:7443"], source: "file" });
  expect(entry(view, "connectTimeout")).toEqual({ key: "connectTimeout", value: "2s", source: "file" });
  expect(entry(view, "keepalive")).toEqual({ key: "keepalive", value: "10s", source: "flag" });
  expect(entry(view, "shutdownGrace")).toEqual({ key: "shutdownGrace", value: "10s", source: "default" });
  expect(entry(view, "idleTimeout")).toEqual({ key: "idleTimeout", value: "off", source: "default" });
  expect(entry(view, "onUnhealthy")).toEqual({ key: "onUnhealthy", value: "close", source: "file" });
  expect(entry(view, "onRemoval")).toEqual({ key: "onRemoval", value: "close", source: "default" });
  expect(entry(view, "dialBackoff")).toEqual({ key: "dialBackoff", value: "1s", source: "default" });
  expect(entry(view, "maxAttempts")).toEqual({ key: "maxAttempts", value: 0, source: "default" });
});

test("config view lists every probe key", () => {
  const path = writeConfig("probe.yaml", [...BASE, "probe: { kind: https, path: /readyz, fall: 2, expectStatus: [200, 204], tls: { serverName: api.internal } }"]);
  const view = viewOf(path, ["--probe-interval", "1s"]);
  const probe = view.settings.filter((setting) => setting.key.startsWith("probe."));

  expect(probe).toEqual([
    { key: "probe.kind", value: "https", source: "file" },
    { key: "probe.interval", value: "1s", source: "flag" },
    // The default timeout of 2s is capped at the shorter interval.
    { key: "probe.timeout", value: "1s", source: "default" },
    { key: "probe.rise", value: 2, source: "default" },
    { key: "probe.fall", value: 2, source: "file" },
    { key: "probe.path", value: "/readyz", source: "file" },
    { key: "probe.expectStatus", value: [200, 204], source: "file" },
    { key: "probe.tls.ca", value: null, source: "default" },
    { key: "probe.tls.insecureSkipVerify", value: false, source: "default" },
    { key: "probe.tls.serverName", value: "api.internal", source: "file" },
    { key: "probe.tls.cert", value: null, source: "default" },
    { key: "probe.tls.key", value: null, source: "default" },
    { key: "probe.bearerTokenFile", value: null, source: "default" },
  ]);
});

test("config view without a probe lists probe as null", () => {
  const view = viewOf(writeConfig("no-probe.yaml", BASE));

  expect(entry(view, "probe")).toEqual({ key: "probe", value: null, source: "default" });
  expect(view.settings.filter((setting) => setting.key.startsWith("probe."))).toEqual([]);
  expect(entry(view, "kubernetes")).toEqual({ key: "kubernetes", value: null, source: "default" });
  expect(entry(view, "etcd")).toEqual({ key: "etcd", value: null, source: "default" });
  expect(view.backendOverrides).toEqual([]);
});

test("config view tcp probe keys", () => {
  const view = viewOf(writeConfig("tcp-probe.yaml", [...BASE, "probe: { kind: tcp, fall: 2 }"]));
  const keys = view.settings.filter((setting) => setting.key.startsWith("probe")).map((setting) => setting.key);

  expect(keys).toEqual(["probe.kind", "probe.interval", "probe.timeout", "probe.rise", "probe.fall"]);
});

test("config view http probe keys", () => {
  const view = viewOf(writeConfig("http-probe.yaml", [...BASE, "probe: { kind: http }"]));
  const keys = view.settings.filter((setting) => setting.key.startsWith("probe")).map((setting) => setting.key);

  expect(keys).toEqual(["probe.kind", "probe.interval", "probe.timeout", "probe.rise", "probe.fall", "probe.path", "probe.expectStatus", "probe.bearerTokenFile"]);
});

test("config view without a shared kind", () => {
  const path = writeConfig("backend-kind.yaml", ["listen: 127.0.0.1:7443", "probe: { fall: 2 }", "backends:", "  - { id: api-1, target: 127.0.0.1:6443, probe: { kind: tcp } }"]);
  const view = viewOf(path);
  const keys = view.settings.filter((setting) => setting.key.startsWith("probe")).map((setting) => setting.key);

  expect(entry(view, "probe.kind")).toEqual({ key: "probe.kind", value: null, source: "default" });
  expect(entry(view, "probe.fall")).toEqual({ key: "probe.fall", value: 2, source: "file" });
  expect(keys).toHaveLength(13);
});

test("config view lists drainTimeout only for drain", () => {
  const close = viewOf(writeConfig("close.yaml", BASE));
  const drain = viewOf(writeConfig("drain.yaml", [...BASE, "onRemoval: drain"]));

  expect(entry(close, "drainTimeout")).toBeUndefined();
  expect(entry(drain, "drainTimeout")).toEqual({ key: "drainTimeout", value: "30s", source: "default" });
});

test("config view values load as a config file", () => {
  const source = writeConfig("round-trip-source.yaml", [...BASE, "probe: { kind: tcp, interval: 2s }", "idleTimeout: 5m", "slowStart: 30s"]);
  const settings = viewOf(source).settings;
  // A null value or an empty list (`none` in the table) means unset, which a file writes by leaving the key out.
  const written = settings.filter((setting) => setting.value !== null && !(Array.isArray(setting.value) && setting.value.length === 0));
  const file: Record<string, unknown> = { backends: [{ id: "api-1", target: "127.0.0.1:6443" }] };
  for (const setting of written) {
    const path = setting.key.split(".");
    let section = file;
    for (const name of path.slice(0, -1)) {
      section = (section[name] ??= {}) as Record<string, unknown>;
    }
    section[path.at(-1)!] = setting.value;
  }
  const copy = writeConfig("round-trip.yaml", [JSON.stringify(file)]);

  const values = (view: ConfigView): [string, unknown][] => view.settings.map((setting) => [setting.key, setting.value]);
  expect(values(viewOf(copy))).toEqual(values(viewOf(source)));
});

test("config view lists backend overrides", () => {
  const path = writeConfig("overrides.yaml", [
    "listen: 127.0.0.1:7443",
    "probe: { kind: tcp }",
    "backends:",
    "  - { id: api-2, target: 127.0.0.1:6444, slowStart: 1m, proxyProtocol: v2 }",
    "  - { id: api-1, target: 127.0.0.1:6443, probe: { kind: http, fall: 1 } }",
    "  - { id: api-3, target: 127.0.0.1:6445 }",
    "  - { id: api-4, target: 127.0.0.1:6446, disabled: true }",
    "  - { id: api-5, target: 127.0.0.1:6447, disabled: false }",
  ]);
  const view = viewOf(path);

  expect(view.backendOverrides).toEqual([
    {
      id: "api-1",
      settings: [
        { key: "probe.kind", value: "http", source: "file" },
        { key: "probe.fall", value: 1, source: "file" },
      ],
    },
    {
      id: "api-2",
      settings: [
        { key: "slowStart", value: "1m", source: "file" },
        { key: "proxyProtocol", value: "v2", source: "file" },
      ],
    },
    { id: "api-4", settings: [{ key: "disabled", value: true, source: "file" }] },
  ]);
});

test("config view shows no secret", () => {
  const secret = "s3cret-token-value-0123456789";
  const tokenFile = join(directory, "token");
  writeFileSync(tokenFile, secret + "\n", { mode: 0o600 });
  const path = writeConfig("secrets.yaml", [
    ...BASE,
    `adminTokenFile: ${tokenFile}`,
    `probe: { kind: http, bearerTokenFile: ${tokenFile} }`,
    "etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: /tinylb/ }",
  ]);
  const view = viewOf(path);
  const text = JSON.stringify(view) + formatConfigView(view);

  expect(text).not.toContain(secret);
  expect(entry(view, "adminTokenFile")).toEqual({ key: "adminTokenFile", value: tokenFile, source: "file" });
  expect(entry(view, "probe.bearerTokenFile")).toEqual({ key: "probe.bearerTokenFile", value: tokenFile, source: "file" });
  expect(entry(view, "etcd.endpoints")).toEqual({ key: "etcd.endpoints", value: ["http://127.0.0.1:2379"], source: "file" });
  expect(entry(view, "etcd.caFile")).toEqual({ key: "etcd.caFile", value: null, source: "default" });
});

test("config view keeps the start source of a pending key", () => {
  const before = writeConfig("before.yaml", [...BASE, "connectTimeout: 2s"]);
  const after = writeConfig("after.yaml", [...BASE, "maxConnections: 5"]);
  const cli = parseArgs(["--config", before]);
  const settings = resolveSettings(cli);
  // As a reload applies the live keys: connectTimeout returns to its default.
  settings.connectTimeoutMs = 3000;
  const view = collectConfigView(settings, cli, { atStart: settings.file, applied: loadConfigFile(after) }, ["maxConnections"]);

  expect(entry(view, "maxConnections")).toEqual({ key: "maxConnections", value: 0, source: "default" });
  expect(entry(view, "connectTimeout")).toEqual({ key: "connectTimeout", value: "3s", source: "default" });
  expect(view.pendingRestart).toEqual(["maxConnections"]);
});

test.each([
  ["kubeconfig: /etc/k.yaml", { inCluster: "default", viaListener: "default" }],
  ["inCluster: true, viaListener: false", { inCluster: "file", viaListener: "file" }],
])("config view names the source of kubernetes { %s }", (keys, sources) => {
  const view = viewOf(writeConfig(`kubernetes-${sources.inCluster}.yaml`, [...BASE, `kubernetes: { ${keys} }`]));

  expect(entry(view, "kubernetes.inCluster")?.source as string).toBe(sources.inCluster);
  expect(entry(view, "kubernetes.viaListener")?.source as string).toBe(sources.viaListener);
});

test("config view formats a table", () => {
  const view: ConfigView = {
    configFile: "/etc/tinylb.yaml",
    settings: [
      { key: "listen", value: ["127.0.0.1:7443", "[::1]:7443"], source: "file" },
      { key: "probe.tls.ca", value: null, source: "default" },
      { key: "maxConnections", value: 0, source: "flag" },
    ],
    backendOverrides: [{ id: "api-1", settings: [{ key: "probe.fall", value: 1, source: "file" }] }],
    pendingRestart: ["workers"],
  };

  expect(formatConfigView(view)).toBe(
    [
      "Config file: /etc/tinylb.yaml",
      "Restart needed: the config file changes workers; the values below stay until tinylb restarts",
      "",
      "SETTING         VALUE                           SOURCE",
      'listen          [127.0.0.1:7443, "[::1]:7443"]  file',
      "probe.tls.ca    none                            default",
      "maxConnections  0                               flag",
      "",
      "Backend overrides (backends[] in the config file):",
      "ID     SETTING     VALUE",
      "api-1  probe.fall  1",
      "",
    ].join("\n"),
  );
});

test.each([
  [["127.0.0.1:7443", "[::1]:7443"]],
  [["api.internal:6443", "10.0.0.1:6443"]],
  [[200, 204]],
  [["#hash", "a: b", "-dash", "*star"]],
  ["[::1]:9100"],
  ["127.0.0.1:9100"],
])("config view writes %p as YAML reads it back", (list) => {
  const view: ConfigView = { configFile: null, settings: [{ key: "listen", value: list, source: "file" }], backendOverrides: [], pendingRestart: [] };
  const row = formatConfigView(view).split("\n").find((line) => line.startsWith("listen"))!;
  const value = row.slice("listen".length, row.lastIndexOf("file")).trim();

  expect(Bun.YAML.parse(`listen: ${value}`)).toEqual({ listen: list });
});

test("config route allows only GET", async () => {
  const view = viewOf(writeConfig("route.yaml", BASE));
  const context = { config: () => view } as unknown as AdminRouteContext;

  const response = await routeAdminRequest(new Request("http://localhost/v1/config"), context);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual(JSON.parse(JSON.stringify(view)));

  const put = routeAdminRequest(new Request("http://localhost/v1/config", { method: "PUT", body: "{}" }), context);
  await expect(put).rejects.toBeInstanceOf(AdminRequestError);
  await expect(put).rejects.toThrow("method PUT is not allowed here; use GET or HEAD");
});

test("config route is not on the metrics server", async () => {
  const context = { config: () => ({}) } as unknown as AdminRouteContext;

  expect(await routeReadOnlyRequest(new Request("http://localhost/v1/config"), context)).toBeUndefined();
});

import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, loadConfigFile } from "../src/config.ts";
import { PROVIDER_HELP } from "../src/provider-flags.ts";
import { parseDnsName, parseResolver, resolveProviderSettings, unusedResolverWarning } from "../src/provider-settings.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0)) {
    step();
  }
});

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-provider-settings-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "tinylb.yaml");
  writeFileSync(path, text);

  return path;
}

test("parseArgs reads provider flags", () => {
  const cli = parseArgs([
    "--admin", "127.0.0.1:9901",
    "--admin-token-file", "/etc/tinylb/token",
    "--admin-allow-public",
    "--metrics", "[::1]:9100",
    "--no-watch-config",
    "--state-file", "/var/lib/tinylb/state.json",
    "--dns", "api.internal:6443",
    "--dns", "api.other:443",
    "--dns-srv", "_https._tcp.api.internal",
    "--dns-resolver", "127.0.0.1:5353",
    "--dns-resolver=::1",
    "--dns-interval", "5s",
  ]);

  expect(cli.providers).toEqual({
    admin: { kind: "tcp", host: "127.0.0.1", port: 9901 },
    adminTokenFile: "/etc/tinylb/token",
    adminAllowPublic: true,
    metrics: { kind: "tcp", host: "::1", port: 9100 },
    watchConfig: false,
    stateFile: "/var/lib/tinylb/state.json",
    dns: [{ name: "api.internal", port: 6443 }, { name: "api.other", port: 443 }],
    dnsSrv: ["_https._tcp.api.internal"],
    dnsResolvers: ["127.0.0.1:5353", "[::1]:53"],
    dnsIntervalMs: 5000,
  });
});

test("parseArgs reads the status command", () => {
  const cli = parseArgs(["status", "--admin", "unix:/run/x.sock", "--json"]);

  expect(cli.command).toBe("status");
  expect(cli.json).toBe(true);
  expect(cli.providers?.admin).toEqual({ kind: "unix", path: "/run/x.sock" });
});

test.each([
  [["--dns", "api.internal"], "--dns: invalid DNS name \"api.internal\": expected NAME:PORT"],
  [["--dns", "api.internal:0"], "the port must be 1 to 65535"],
  [["--dns", "bad name:80"], "expected NAME:PORT"],
  [["--dns-srv", "not a name"], "--dns-srv: invalid SRV name"],
  [["--dns-resolver", "dns.example:53"], "use an IP address, with a port unless it is 53"],
  [["--dns-interval", "500ms"], '--dns-interval: the interval must be at least 1s (got "500ms")'],
  [["--admin", "nowhere"], "--admin: invalid address \"nowhere\""],
  [["--metrics", "unix:/run/tinylb/metrics.sock"], "--metrics: invalid metrics address \"unix:/run/tinylb/metrics.sock\": a Unix socket is not allowed"],
  [["--metrics", "unix:/run/tinylb/metrics.sock"], "use host:port or [ipv6]:port, or off"],
  [["--metrics", "9100"], "--metrics: invalid address \"9100\": expected host:port or [ipv6]:port, or off"],
  [["status", "--metrics", "127.0.0.1:9100"], "--metrics is not valid with tinylb status"],
  [["--state-file", ""], "--state-file needs a file path"],
  [["status", "--listen", "127.0.0.1:1"], "--listen is not valid with tinylb status"],
])("parseArgs rejects %p", (argv, message) => {
  expect(() => parseArgs(argv)).toThrow(UsageError);
  expect(() => parseArgs(argv)).toThrow(message);
});

test("config file sets provider keys", () => {
  const path = configFile(`admin: unix:/run/tinylb/other.sock
metrics: 0.0.0.0:9100
watchConfig: false
stateFile: /var/lib/tinylb/state.json
dns:
  names: [ "api.internal:6443" ]
  srv: [ "_https._tcp.api.internal" ]
  resolver: 10.0.0.53
  interval: 10s
`);

  const settings = resolveProviderSettings({}, loadConfigFile(path).providers);

  expect(settings).toEqual({
    admin: { kind: "unix", path: "/run/tinylb/other.sock" },
    adminIsDefault: false,
    adminAllowPublic: false,
    adminTokenFile: undefined,
    metrics: { kind: "tcp", host: "0.0.0.0", port: 9100 },
    watchConfig: false,
    stateFile: "/var/lib/tinylb/state.json",
    dns: { names: [{ name: "api.internal", port: 6443 }], srv: ["_https._tcp.api.internal"], resolvers: ["10.0.0.53:53"], intervalMs: 10_000 },
  });
});

test("provider flags win over the config file", () => {
  const path = configFile(`dns:\n  names: [ "api.internal:6443" ]\n  interval: 10s\nwatchConfig: false\n`);

  const settings = resolveProviderSettings({ dns: [{ name: "flag.internal", port: 1 }], watchConfig: true }, loadConfigFile(path).providers);

  expect(settings.dns.names).toEqual([{ name: "flag.internal", port: 1 }]);
  expect(settings.dns.intervalMs).toBe(10_000);
  expect(settings.watchConfig).toBe(true);
  expect(settings.adminIsDefault).toBe(true);
  expect(settings.metrics).toBe("off");
});

test.each(["off", "OFF", " Off "])("admin and metrics %p in a config file turn them off", (value) => {
  const path = configFile(`admin: "${value}"\nmetrics: "${value}"\n`);

  const settings = resolveProviderSettings({}, loadConfigFile(path).providers);

  expect(settings.admin).toBe("off");
  expect(settings.metrics).toBe("off");
});

test("bad admin address in a config file offers off", () => {
  const path = configFile('admin: "nowhere"\n');

  expect(() => loadConfigFile(path)).toThrow('admin: invalid address "nowhere": expected host:port, [ipv6]:port or unix:/path, or off');
});

test("metrics flag wins over the config file", () => {
  const path = configFile("metrics: 127.0.0.1:9100\n");

  const settings = resolveProviderSettings({ metrics: "off" }, loadConfigFile(path).providers);

  expect(settings.metrics).toBe("off");
});

test.each([
  ["dns:\n  names: [ \"api.internal\" ]\n", "dns.names[0]", "api.internal"],
  ["dns:\n  resolver: dns.example\n", "dns.resolver", "dns.example"],
  ["dns:\n  interval: 100ms\n", "dns.interval", "at least 1s"],
  ["dns:\n  hosts: []\n", "dns", "hosts"],
  ["admin: nowhere\n", "admin", "nowhere"],
  ["metrics: unix:/run/tinylb/metrics.sock\n", "metrics", "a Unix socket is not allowed"],
  ["metrics: \":9100\"\n", "metrics", "the host is missing"],
  ["watchConfig: maybe\n", "watchConfig", "maybe"],
])("config file rejects %p", (text, field, value) => {
  const path = configFile(text);

  expect(() => loadConfigFile(path)).toThrow(ConfigError);
  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: ${field}`);
  expect(() => loadConfigFile(path)).toThrow(value);
});

test.each([
  ["api.internal:6443", { name: "api.internal", port: 6443 }],
  ["api-1.cluster.local.:443", { name: "api-1.cluster.local.", port: 443 }],
  ["api:65536", "invalid DNS name \"api:65536\": the port must be 1 to 65535, such as api.internal:6443"],
])("parseDnsName %p", (text, expected) => {
  expect(parseDnsName(text)).toEqual(expected);
});

test.each([
  ["10.0.0.53", "10.0.0.53:53"],
  ["10.0.0.53:5353", "10.0.0.53:5353"],
  ["fd00::53", "[fd00::53]:53"],
  ["[fd00::53]:5353", "[fd00::53]:5353"],
])("parseResolver %p", (text, expected) => {
  expect(parseResolver(text)).toBe(expected);
});

const USE_AN_IP = "use an IP address, with a port unless it is 53, such as 10.0.0.53 or [::1]:5353";

test.each([
  ["localhost", `invalid DNS resolver "localhost": ${USE_AN_IP}`],
  ["localhost:53", `invalid DNS resolver "localhost:53": ${USE_AN_IP}`],
  ["unix:/tmp/x", `invalid DNS resolver "unix:/tmp/x": ${USE_AN_IP}`],
  ["resolver.test", `invalid DNS resolver "resolver.test": ${USE_AN_IP}`],
  ["", `invalid DNS resolver "": ${USE_AN_IP}`],
  ["10.0.0.53:99999", 'invalid DNS resolver "10.0.0.53:99999": invalid address "10.0.0.53:99999": the port 99999 must be from 1 to 65535'],
  ["[fd00::53]:dns", 'invalid DNS resolver "[fd00::53]:dns": invalid address "[fd00::53]:dns": the port "dns" must be a number from 1 to 65535'],
])("parseResolver rejects %p", (text, message) => {
  expect(parseResolver(text)).toEqual({ error: message });
});

test("resolver without a DNS name gets a warning", () => {
  const dns = { names: [], srv: [], resolvers: ["127.0.0.1:5353"], intervalMs: 30_000 };

  expect(unusedResolverWarning(dns)).toContain("a DNS resolver is set but no DNS name is, so it is never asked");
  expect(unusedResolverWarning({ ...dns, names: [{ name: "api.internal", port: 6443 }] })).toBeUndefined();
  expect(unusedResolverWarning({ ...dns, srv: ["_https._tcp.api.internal"] })).toBeUndefined();
  expect(unusedResolverWarning({ ...dns, resolvers: [] })).toBeUndefined();
});

test("resolver docs state the default port 53", () => {
  const configuration = readFileSync(join(import.meta.dir, "..", "docs", "configuration.md"), "utf8");

  expect(parseResolver("10.0.0.53")).toBe("10.0.0.53:53");
  expect(parseResolver("::1")).toBe("[::1]:53");
  expect(PROVIDER_HELP).toContain("ip, ip:port or [ipv6]:port (port 53 when none");
  expect(configuration).toContain("| `dns.resolver` | `ip`, `ip:port` or `[ipv6]:port` (port 53 when none is given), or a list |");
});

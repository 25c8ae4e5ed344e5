import { expect, test } from "bun:test";
import { parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, validateConfig } from "../src/config.ts";
import { HEALTH_DEFAULTS, resolveHealthSettings } from "../src/health-config.ts";

const FILE = "/etc/tinylb/tinylb.yaml";

test.each([
  [{ probe: { kind: "udp" } }, 'probe.kind: must be one of "tcp", "http", "https" (got "udp")'],
  [{ probe: { timeout: "fast" } }, 'probe.timeout: invalid duration "fast"'],
  [{ probe: { interval: "0" } }, "probe.interval: use an interval of at least 100ms, such as 5s"],
  [{ probe: { rise: 0 } }, "probe.rise: must be at least 1 (got 0)"],
  [{ probe: { fall: 1.5 } }, "probe.fall"],
  [{ probe: { path: "readyz" } }, 'probe.path: the path must start with / and contain no spaces or control characters (got "readyz")'],
  [{ probe: { path: "/ready z" } }, "probe.path"],
  [{ probe: { expectStatus: [200, 700] } }, "probe.expectStatus[1]: must be at most 599 (got 700)"],
  [{ probe: { tls: { cert: "/etc/tinylb/probe.crt" } } }, "probe.tls: tls.cert and tls.key must be given together"],
  [{ probe: { tls: { serverName: "api server" } } }, "probe.tls.serverName"],
  [{ probe: { unknown: 1 } }, 'probe: unknown key "unknown"'],
  [{ backends: [{ id: "a", target: "127.0.0.1:6443", probe: { kind: "ftp" } }] }, 'backends[0].probe.kind (backend "a"): must be one of "tcp", "http", "https" (got "ftp")'],
  [{ onRemoval: "kill" }, 'onRemoval: must be one of "close", "drain" (got "kill")'],
  [{ onUnhealthy: "drop" }, 'onUnhealthy: must be one of "keep", "close" (got "drop")'],
  [{ maxAttempts: -1 }, "maxAttempts: must be at least 0 (got -1)"],
  [{ drainTimeout: "10" }, 'drainTimeout: invalid duration "10"'],
  [{ dialBackoff: "0" }, "dialBackoff: use a duration above zero"],
  [{ probe: { interval: "50ms" } }, 'probe.interval: use an interval of at least 100ms, such as 5s (got "50ms")'],
  [{ probe: { timeout: "5ms" } }, 'probe.timeout: use a timeout of at least 10ms, such as 2s (got "5ms")'],
  [{ probe: { interval: "0.05s" } }, 'probe.interval: use an interval of at least 100ms, such as 5s (got "0.05s")'],
  [{ dialBackoff: "0s" }, 'dialBackoff: use a duration above zero, such as 1s or 5s (got "0s")'],
  [{ drainTimeout: "0ms" }, 'drainTimeout: use a duration above zero, such as 1s or 5s (got "0ms")'],
  [{ dialBackoff: "40s" }, "dialBackoff: dialBackoff (40s) is longer than maxDialBackoff (30s, the default); lower dialBackoff or raise maxDialBackoff"],
  [{ dialBackoff: "5s", maxDialBackoff: "2s" }, "dialBackoff: dialBackoff (5s) is longer than maxDialBackoff (2s); lower dialBackoff or raise maxDialBackoff"],
  [{ maxDialBackoff: "500ms" }, "maxDialBackoff: dialBackoff (1s, the default) is longer than maxDialBackoff (500ms); lower dialBackoff or raise maxDialBackoff"],
])("config rejects %j", (data, message) => {
  expect(() => validateConfig(FILE, data)).toThrow(ConfigError);
  expect(() => validateConfig(FILE, data)).toThrow(`invalid config ${FILE}: ${message}`);
});

test("config reads probe settings and per-backend overrides", () => {
  const file = validateConfig(FILE, {
    probe: { kind: "https", path: "/readyz", interval: "2s", timeout: "500ms", rise: 1, fall: 2, expectStatus: 200, tls: { ca: "/etc/kubernetes/pki/ca.crt", serverName: "kubernetes", cert: "/c.crt", key: "/c.key" }, bearerTokenFile: "/token" },
    backends: [
      { id: "a", target: "10.0.0.1:6443", probe: { kind: "tcp", timeout: "1s" } },
      { id: "b", target: "10.0.0.2:6443" },
    ],
    dialBackoff: "500ms",
    maxDialBackoff: "1m",
    maxAttempts: 2,
    onRemoval: "drain",
    drainTimeout: "1m",
    onUnhealthy: "close",
  });

  expect(file.backends!.map((backend) => backend.id)).toEqual(["a", "b"]);
  expect(file.health).toEqual({
    probe: {
      kind: "https",
      path: "/readyz",
      intervalMs: 2000,
      timeoutMs: 500,
      rise: 1,
      fall: 2,
      expectStatus: [200],
      tls: { caFile: "/etc/kubernetes/pki/ca.crt", serverName: "kubernetes", certFile: "/c.crt", keyFile: "/c.key" },
      bearerTokenFile: "/token",
    },
    probeOverrides: new Map([["a", { kind: "tcp", timeoutMs: 1000 }]]),
    probeOverridePaths: new Map([["a", "backends[0].probe"]]),
    backoffMs: 500,
    maxBackoffMs: 60_000,
    maxAttempts: 2,
    onRemoval: "drain",
    drainTimeoutMs: 60_000,
    onUnhealthy: "close",
  });
});

test("config accepts a dial back-off equal to the maximum", () => {
  const file = validateConfig(FILE, { dialBackoff: "30s" });

  expect(file.health?.backoffMs).toBe(30_000);
  expect(file.health?.maxBackoffMs).toBeUndefined();
});

test("health settings default without flags or file", () => {
  expect(resolveHealthSettings()).toEqual({
    check: { probe: undefined, probeOverrides: undefined, backoffMs: HEALTH_DEFAULTS.backoffMs, maxBackoffMs: HEALTH_DEFAULTS.maxBackoffMs },
    maxAttempts: 0,
    onRemoval: "close",
    drainTimeoutMs: 30_000,
    onUnhealthy: "keep",
  });
});

test("health flags win over the file field by field", () => {
  const cli = parseArgs(["--listen", "127.0.0.1:0", "--probe-path", "/livez", "--probe-timeout", "300ms", "--max-attempts", "3", "--on-removal", "drain", "--drain-timeout", "5s", "--on-unhealthy", "close", "--probe-server-name", "kubernetes"]);
  const file = validateConfig(FILE, { probe: { kind: "https", path: "/readyz", rise: 4, tls: { ca: "/ca.crt" } }, maxAttempts: 1 });

  const settings = resolveHealthSettings(cli.health, file.health);

  expect(settings.check.probe).toEqual({ kind: "https", path: "/livez", rise: 4, timeoutMs: 300, tls: { caFile: "/ca.crt", serverName: "kubernetes" } });
  expect(settings).toMatchObject({ maxAttempts: 3, onRemoval: "drain", drainTimeoutMs: 5000, onUnhealthy: "close" });
});

test.each([
  [["--probe", "udp"], '--probe "udp" is not valid; use one of tcp, http, https'],
  [["--probe-path", "readyz"], '--probe-path "readyz" is not valid; use a path that starts with / and has no spaces, such as /readyz'],
  [["--probe-interval", "0"], '--probe-interval: use a duration above zero, such as 1s or 5s (got "0")'],
  [["--probe-timeout", "soon"], '--probe-timeout: invalid duration "soon"'],
  [["--max-attempts", "-1"], '--max-attempts "-1" is not valid; use a whole number from 0 to 10000'],
  [["--on-removal", "kill"], '--on-removal "kill" is not valid; use one of close, drain'],
  [["--on-unhealthy", "drop"], '--on-unhealthy "drop" is not valid; use one of keep, close'],
  [["--probe-ca", ""], "--probe-ca needs a non-empty value on one line"],
])("flags reject %p", (args, message) => {
  expect(() => parseArgs(args)).toThrow(UsageError);
  expect(() => parseArgs(args)).toThrow(message);
});

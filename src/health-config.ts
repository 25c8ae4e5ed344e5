import { z } from "zod";
import { formatDuration, parseDuration } from "./duration.ts";
import { type HealthCheckSettings, UNHEALTHY_POLICIES, type UnhealthyPolicy } from "./health-checker.ts";
import { PROBE_KINDS, type ProbeOverrides } from "./probes/probe.ts";
import { REMOVAL_POLICIES, type RemovalPolicy } from "./target-drain.ts";

/** Health, failover and removal settings as a config file or flags give them: every field optional. */
export interface HealthConfig {
  probe?: ProbeOverrides;
  /** Per-backend probe settings by backend id (config file only). */
  probeOverrides?: Map<string, ProbeOverrides>;
  /** Field path of each `probeOverrides` entry in the file, such as `backends[2].probe`, for messages. */
  probeOverridePaths?: Map<string, string>;
  backoffMs?: number;
  maxBackoffMs?: number;
  maxAttempts?: number;
  onRemoval?: RemovalPolicy;
  drainTimeoutMs?: number;
  onUnhealthy?: UnhealthyPolicy;
}

/** The merged settings a server runs with. */
export interface HealthSettings {
  check: HealthCheckSettings;
  maxAttempts: number;
  onRemoval: RemovalPolicy;
  drainTimeoutMs: number;
  onUnhealthy: UnhealthyPolicy;
}

/** Defaults of the failover and removal settings. */
export const HEALTH_DEFAULTS = {
  backoffMs: 1000,
  maxBackoffMs: 30_000,
  maxAttempts: 0,
  onRemoval: "close",
  drainTimeoutMs: 30_000,
  onUnhealthy: "keep",
} as const;

/** Shortest probe interval accepted: shorter ones load backends and the balancer for no gain. */
export const MIN_PROBE_INTERVAL_MS = 100;
/** Shortest probe timeout accepted: below it even a probe on loopback could time out. */
export const MIN_PROBE_TIMEOUT_MS = 10;

/** Upper bound of `maxAttempts`, far above any real backend set. */
export const MAX_ATTEMPTS = 10_000;

/**
 * Builds the schema of a duration of at least `minimumMs`. A value below it is reported with the text as written,
 * such as `(got "50ms")`, since a refinement of the parsed number would show 50 without a unit.
 */
function durationOfAtLeast(minimumMs: number, message: string) {
  return z.string().transform((text, context) => {
    const result = parseDuration(text);
    if (typeof result === "string") {
      context.addIssue({ code: "custom", message: result });

      return z.NEVER;
    }
    if (result < minimumMs) {
      context.addIssue({ code: "custom", message, input: text });

      return z.NEVER;
    }

    return result;
  });
}

const positiveDuration = durationOfAtLeast(1, "use a duration above zero, such as 1s or 5s");

/** Characters that would break the request line or a header of an HTTP probe. */
const HEADER_UNSAFE = /[\s\u0000-\u001f\u007f]/;

const tlsSchema = z.strictObject({
  ca: z.string().min(1).optional(),
  insecureSkipVerify: z.boolean().optional(),
  serverName: z.string().min(1).max(253).refine((name) => !HEADER_UNSAFE.test(name), "the server name must not contain spaces or control characters").optional(),
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
});

const statusCode = z.int().min(100).max(599);

/** Probe settings of the balancer (`probe`) or of one backend (`backends[].probe`). */
export const probeSchema = z
  .strictObject({
    kind: z.enum(PROBE_KINDS).optional(),
    interval: durationOfAtLeast(MIN_PROBE_INTERVAL_MS, `use an interval of at least ${MIN_PROBE_INTERVAL_MS}ms, such as 5s`).optional(),
    timeout: durationOfAtLeast(MIN_PROBE_TIMEOUT_MS, `use a timeout of at least ${MIN_PROBE_TIMEOUT_MS}ms, such as 2s`).optional(),
    rise: z.int().min(1).max(100).optional(),
    fall: z.int().min(1).max(100).optional(),
    path: z
      .string()
      .refine((path) => path.startsWith("/") && !HEADER_UNSAFE.test(path), "the path must start with / and contain no spaces or control characters")
      .optional(),
    expectStatus: z.union([statusCode, z.array(statusCode).min(1).max(20)]).optional(),
    tls: tlsSchema.optional(),
    bearerTokenFile: z.string().min(1).optional(),
  })
  .refine((probe) => (probe.tls?.cert === undefined) === (probe.tls?.key === undefined), {
    message: "tls.cert and tls.key must be given together",
    path: ["tls"],
  });

/** Top-level config keys of health checks, failover and removal; `fileSchema` spreads them in. */
export const healthFileKeys = {
  probe: probeSchema.optional(),
  dialBackoff: positiveDuration.optional(),
  maxDialBackoff: positiveDuration.optional(),
  maxAttempts: z.int().min(0).max(MAX_ATTEMPTS).optional(),
  onRemoval: z.enum(REMOVAL_POLICIES).optional(),
  drainTimeout: positiveDuration.optional(),
  onUnhealthy: z.enum(UNHEALTHY_POLICIES).optional(),
};

type ParsedProbe = z.output<typeof probeSchema>;

/** Turns a validated probe block into probe overrides. */
export function toProbeOverrides(probe: ParsedProbe): ProbeOverrides {
  const overrides: ProbeOverrides = {};
  const set = <K extends keyof ProbeOverrides>(key: K, value: ProbeOverrides[K] | undefined): void => {
    if (value !== undefined) {
      overrides[key] = value;
    }
  };
  set("kind", probe.kind);
  set("intervalMs", probe.interval);
  set("timeoutMs", probe.timeout);
  set("rise", probe.rise);
  set("fall", probe.fall);
  set("path", probe.path);
  set("expectStatus", probe.expectStatus === undefined ? undefined : [probe.expectStatus].flat());
  set("bearerTokenFile", probe.bearerTokenFile);
  if (probe.tls !== undefined) {
    const { ca, insecureSkipVerify, serverName, cert, key } = probe.tls;
    overrides.tls = Object.fromEntries(
      Object.entries({ caFile: ca, insecureSkipVerify, serverName, certFile: cert, keyFile: key }).filter(([, value]) => value !== undefined),
    );
  }

  return overrides;
}

/**
 * Reads the health keys of a validated config file. `rawBackends` is the file's
 * unparsed `backends` list, whose entries may carry a `probe` block (already validated).
 */
export function healthConfigOf(file: Record<string, unknown>, rawBackends: unknown): HealthConfig {
  const config: HealthConfig = {
    probe: file.probe === undefined ? undefined : toProbeOverrides(file.probe as ParsedProbe),
    backoffMs: file.dialBackoff as number | undefined,
    maxBackoffMs: file.maxDialBackoff as number | undefined,
    maxAttempts: file.maxAttempts as number | undefined,
    onRemoval: file.onRemoval as RemovalPolicy | undefined,
    drainTimeoutMs: file.drainTimeout as number | undefined,
    onUnhealthy: file.onUnhealthy as UnhealthyPolicy | undefined,
  };

  if (Array.isArray(rawBackends)) {
    const overrides = new Map<string, ProbeOverrides>();
    const paths = new Map<string, string>();
    for (const [index, entry] of (rawBackends as { id: string; probe?: unknown }[]).entries()) {
      if (entry.probe !== undefined) {
        overrides.set(entry.id, toProbeOverrides(probeSchema.parse(entry.probe)));
        paths.set(entry.id, `backends[${index}].probe`);
      }
    }
    config.probeOverrides = overrides;
    config.probeOverridePaths = paths;
  }

  return config;
}

/**
 * Checks that the first dial back-off is not longer than the maximum, each from the file or
 * its default. Returns the problem, naming both values, or undefined.
 */
export function checkDialBackoff(health: HealthConfig): string | undefined {
  const first = health.backoffMs ?? HEALTH_DEFAULTS.backoffMs;
  const max = health.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs;
  if (first <= max) {
    return undefined;
  }
  const describe = (ms: number, fromFile: number | undefined): string => (fromFile === undefined ? `${formatDuration(ms)}, the default` : formatDuration(ms));
  const field = health.backoffMs === undefined ? "maxDialBackoff" : "dialBackoff";

  return `${field}: dialBackoff (${describe(first, health.backoffMs)}) is longer than maxDialBackoff (${describe(max, health.maxBackoffMs)}); lower dialBackoff or raise maxDialBackoff`;
}

/** Merges flags over the file over the defaults; a flag's probe fields win one by one. */
export function resolveHealthSettings(fromFlags: HealthConfig = {}, fromFile: HealthConfig = {}): HealthSettings {
  const probe = fromFlags.probe === undefined ? fromFile.probe : { ...fromFile.probe, ...fromFlags.probe, tls: { ...fromFile.probe?.tls, ...fromFlags.probe?.tls } };

  return {
    check: {
      probe,
      probeOverrides: fromFile.probeOverrides,
      backoffMs: fromFlags.backoffMs ?? fromFile.backoffMs ?? HEALTH_DEFAULTS.backoffMs,
      maxBackoffMs: fromFlags.maxBackoffMs ?? fromFile.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs,
    },
    maxAttempts: fromFlags.maxAttempts ?? fromFile.maxAttempts ?? HEALTH_DEFAULTS.maxAttempts,
    onRemoval: fromFlags.onRemoval ?? fromFile.onRemoval ?? HEALTH_DEFAULTS.onRemoval,
    drainTimeoutMs: fromFlags.drainTimeoutMs ?? fromFile.drainTimeoutMs ?? HEALTH_DEFAULTS.drainTimeoutMs,
    onUnhealthy: fromFlags.onUnhealthy ?? fromFile.onUnhealthy ?? HEALTH_DEFAULTS.onUnhealthy,
  };
}

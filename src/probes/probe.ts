import type { Backend } from "../backend.ts";
import type { ProxyProtocolVersion } from "../proxy-header.ts";
import { httpProbe } from "./http-probe.ts";
import { tcpProbe } from "./tcp-probe.ts";

/** Kinds of active probe: a TCP connect, or a `GET` over plain HTTP or HTTPS. */
export const PROBE_KINDS = ["tcp", "http", "https"] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

/** TLS settings of an `https` probe. Files are read on every probe, so rotated files are picked up. */
export interface ProbeTls {
  /** PEM file of the CA that signs the backend's certificate; without it the system CAs are used. */
  caFile?: string;
  /**
   * Accepts any certificate and name. Only for tests and bootstrap.
   * @default false
   */
  insecureSkipVerify?: boolean;
  /** Name sent as SNI and checked against the certificate; without it, the target's host. */
  serverName?: string;
  /** PEM client certificate, sent when the backend requests one; needs `keyFile`. */
  certFile?: string;
  /** PEM private key of `certFile`. */
  keyFile?: string;
}

/** Probe settings of one backend with every field set; `resolveProbeSettings` fills in the defaults. */
export interface ProbeSettings {
  kind: ProbeKind;
  /** Milliseconds from the start of one probe to the start of the next; probes never overlap. */
  intervalMs: number;
  /** Milliseconds a probe may take before it counts as failed. */
  timeoutMs: number;
  /** Consecutive successes that make an unhealthy backend healthy. */
  rise: number;
  /** Consecutive failures that make a healthy backend unhealthy. */
  fall: number;
  /** Path of the `GET` request (http and https). */
  path: string;
  /** Status codes that count as success (http and https). */
  expectStatus: number[];
  tls: ProbeTls;
  /** File holding a bearer token sent as `Authorization: Bearer`; read on every probe and never logged. */
  bearerTokenFile?: string;
  /**
   * PROXY protocol version of the backend, whose probe then starts with a header that
   * carries no client (see `encodeLocalProxyHeader`); set from the backend's `proxyProtocol`.
   */
  proxyProtocol?: ProxyProtocolVersion;
}

/** Probe settings as a config file or flags give them: every field optional. */
export type ProbeOverrides = Partial<Omit<ProbeSettings, "tls" | "proxyProtocol">> & { tls?: ProbeTls };

/** Defaults of every probe setting except the kind. `defaultProbeTimeoutMs` caps the timeout at a shorter interval. */
export const PROBE_DEFAULTS = {
  intervalMs: 5000,
  timeoutMs: 2000,
  rise: 2,
  fall: 3,
  path: "/",
  expectStatus: [200],
} as const;

/**
 * Returns the timeout of a probe that sets none: 2 s, or the interval when that is shorter.
 * A shorter interval is set for faster failover, and a longer default timeout would delay
 * the next probe of a silent backend. The config check rejects a set timeout above the interval.
 */
export function defaultProbeTimeoutMs(intervalMs: number): number {
  return Math.min(PROBE_DEFAULTS.timeoutMs, intervalMs);
}

/**
 * Fills in defaults below the balancer's settings and a backend's overrides, with the
 * timeout capped at the interval by `defaultProbeTimeoutMs`. Returns undefined when
 * neither names a kind, which means "no active probe".
 */
export function resolveProbeSettings(balancer: ProbeOverrides | undefined, backend?: ProbeOverrides): ProbeSettings | undefined {
  const kind = backend?.kind ?? balancer?.kind;
  if (kind === undefined) {
    return undefined;
  }

  const intervalMs = backend?.intervalMs ?? balancer?.intervalMs ?? PROBE_DEFAULTS.intervalMs;

  return {
    ...PROBE_DEFAULTS,
    expectStatus: [...PROBE_DEFAULTS.expectStatus],
    ...balancer,
    ...backend,
    kind,
    intervalMs,
    timeoutMs: backend?.timeoutMs ?? balancer?.timeoutMs ?? defaultProbeTimeoutMs(intervalMs),
    tls: { ...balancer?.tls, ...backend?.tls },
  };
}

/**
 * Runs one probe of a backend. Resolves when the backend passes.
 *
 * The probe itself has no timer: the caller aborts `signal` at its timeout, and the
 * probe then closes its socket, also one whose connect is still pending, and rejects.
 *
 * @throws {ProbeError} naming why the backend failed the probe.
 */
export function runProbe(backend: Backend, settings: ProbeSettings, signal: AbortSignal): Promise<void> {
  return settings.kind === "tcp" ? tcpProbe(backend, signal, settings.proxyProtocol) : httpProbe(backend, settings, signal);
}

/** Describes a probe for logs, such as `https GET /readyz` or `tcp connect`. */
export function describeProbe(settings: ProbeSettings): string {
  return settings.kind === "tcp" ? "tcp connect" : `${settings.kind} GET ${settings.path}`;
}

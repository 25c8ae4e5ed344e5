import { parseDuration } from "./duration.ts";
import { withRejectedValue } from "./rejected-value.ts";
import { type HealthConfig, MAX_ATTEMPTS, MIN_PROBE_INTERVAL_MS, MIN_PROBE_TIMEOUT_MS } from "./health-config.ts";
import { UNHEALTHY_POLICIES } from "./health-checker.ts";
import { PROBE_KINDS } from "./probes/probe.ts";
import { REMOVAL_POLICIES } from "./target-drain.ts";

/** Command-line flags of health checks, failover and removal; each takes a value. */
export const HEALTH_FLAGS = [
  "--probe",
  "--probe-path",
  "--probe-interval",
  "--probe-timeout",
  "--probe-ca",
  "--probe-server-name",
  "--probe-token-file",
  "--max-attempts",
  "--on-removal",
  "--drain-timeout",
  "--on-unhealthy",
] as const;

/** The lines `tinylb --help` shows for `HEALTH_FLAGS`. */
export const HEALTH_HELP = `  --probe KIND             probe every backend: tcp (connect), http or https (GET a path);
                           unhealthy backends are skipped while a healthy one is left (default: no probe)
  --probe-path PATH        path the http and https probes GET, such as /readyz (default /)
  --probe-interval DUR     start a probe of each backend every DUR, at least 100ms (default 5s)
  --probe-timeout DUR      count a probe that takes longer than DUR as failed; at least 10ms
                           and at most the interval (default 2s, or the interval when shorter)
  --probe-ca FILE          verify https probes against the CA certificates in FILE (PEM)
  --probe-server-name NAME send NAME as SNI and check the certificate against it
  --probe-token-file FILE  send the token in FILE as "Authorization: Bearer"; never logged
  --max-attempts N         backends one client tries before it is closed; 0 means every
                           backend once (default 0)
  --on-removal POLICY      close: close a removed target's connections at once; drain: let
                           them finish for up to --drain-timeout (default close)
  --drain-timeout DUR      how long the drain policy waits before closing (default 30s)
  --on-unhealthy POLICY    keep or close the open connections of a backend that turns
                           unhealthy (default keep)`;

/** Applies one health flag to `health`; returns an error message for a bad value. */
export function applyHealthFlag(health: HealthConfig, flag: string, value: string): string | undefined {
  const probe = (health.probe ??= {});
  switch (flag) {
    case "--probe":
      return choose(flag, value, PROBE_KINDS, (kind) => (probe.kind = kind));
    case "--probe-path":
      if (!value.startsWith("/") || /[\s\u0000-\u001f\u007f]/.test(value)) {
        return `${flag} "${value}" is not valid; use a path that starts with / and has no spaces, such as /readyz`;
      }
      probe.path = value;

      return undefined;
    case "--probe-interval":
      return duration(flag, value, (ms) => (probe.intervalMs = ms), MIN_PROBE_INTERVAL_MS);
    case "--probe-timeout":
      return duration(flag, value, (ms) => (probe.timeoutMs = ms), MIN_PROBE_TIMEOUT_MS);
    case "--probe-ca":
      return oneLine(flag, value, (path) => ((probe.tls ??= {}).caFile = path));
    case "--probe-server-name":
      return oneLine(flag, value, (name) => ((probe.tls ??= {}).serverName = name));
    case "--probe-token-file":
      return oneLine(flag, value, (path) => (probe.bearerTokenFile = path));
    case "--max-attempts":
      if (!/^\d{1,5}$/.test(value) || Number(value) > MAX_ATTEMPTS) {
        return `${flag} "${value}" is not valid; use a whole number from 0 to ${MAX_ATTEMPTS}`;
      }
      health.maxAttempts = Number(value);

      return undefined;
    case "--on-removal":
      return choose(flag, value, REMOVAL_POLICIES, (policy) => (health.onRemoval = policy));
    case "--drain-timeout":
      return duration(flag, value, (ms) => (health.drainTimeoutMs = ms));
    case "--on-unhealthy":
      return choose(flag, value, UNHEALTHY_POLICIES, (policy) => (health.onUnhealthy = policy));
  }

  return `invariant violated: ${flag} is not a health flag`;
}

function choose<T extends string>(flag: string, value: string, choices: readonly T[], apply: (choice: T) => void): string | undefined {
  if (!(choices as readonly string[]).includes(value)) {
    return `${flag} "${value}" is not valid; use one of ${choices.join(", ")}`;
  }
  apply(value as T);

  return undefined;
}

function duration(flag: string, value: string, apply: (ms: number) => void, minMs = 1): string | undefined {
  const result = parseDuration(value);
  if (typeof result === "string") {
    return `${flag}: ${result}`;
  }
  if (result <= 0) {
    return `${flag}: ${withRejectedValue("use a duration above zero, such as 1s or 5s", value)}`;
  }
  if (result < minMs) {
    return `${flag}: ${value} is too short; use at least ${minMs}ms`;
  }
  apply(result);

  return undefined;
}

function oneLine(flag: string, value: string, apply: (text: string) => void): string | undefined {
  if (value === "" || /[\r\n]/.test(value)) {
    return `${flag} needs a non-empty value on one line`;
  }
  apply(value);

  return undefined;
}

import type { Backend } from "./backend.ts";
import type { ProxyProtocolVersion } from "./proxy-header.ts";

/** Values of `proxyProtocol` and `--proxy-protocol`: no header, or PROXY protocol version 1 or 2. */
export const PROXY_PROTOCOL_MODES = ["off", "v1", "v2"] as const;
export type ProxyProtocolMode = (typeof PROXY_PROTOCOL_MODES)[number];

/**
 * The PROXY protocol header each backend receives before the client's bytes: none, v1 or v2.
 * A connection keeps the settings it was accepted with, also when it fails over.
 */
export interface ProxyProtocolSettings {
  /** Mode of every backend without a mode of its own (`proxyProtocol`, `--proxy-protocol`). */
  readonly mode: ProxyProtocolMode;
  /** Modes of single backends by id (`backends[].proxyProtocol`, config file only), laid over `mode`. */
  readonly byId: ReadonlyMap<string, ProxyProtocolMode>;
}

/** The settings under which no backend receives a header. */
export const PROXY_PROTOCOL_OFF: ProxyProtocolSettings = Object.freeze({ mode: "off", byId: new Map() });

/** Returns the version `backend` receives, or undefined when it receives no header. */
export function proxyProtocolOf(settings: ProxyProtocolSettings, backend: Backend): ProxyProtocolVersion | undefined {
  const mode = settings.byId.get(backend.id) ?? settings.mode;

  return mode === "off" ? undefined : mode;
}

/** True when some backend may receive a header: the mode is on, or a backend turns it on. */
export function usesProxyProtocol(settings: ProxyProtocolSettings): boolean {
  return settings.mode !== "off" || [...settings.byId.values()].some((mode) => mode !== "off");
}

/** Returns true when both settings send every backend id the same header. */
export function sameProxyProtocol(a: ProxyProtocolSettings, b: ProxyProtocolSettings): boolean {
  return describeProxyProtocol(a) === describeProxyProtocol(b);
}

/** Describes the settings for logs, such as `v2` or `off, api-2=v1`. */
export function describeProxyProtocol(settings: ProxyProtocolSettings): string {
  const ids = [...settings.byId.keys()].sort();
  const overrides = ids.map((id) => `${id}=${settings.byId.get(id)}`);

  return [settings.mode, ...overrides].join(", ");
}

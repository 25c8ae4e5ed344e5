/**
 * The PROXY protocol header that tinylb writes to a backend before the client's bytes, so the
 * backend learns the client's address. Both versions follow HAProxy's specification
 * (proxy-protocol.txt, "The PROXY protocol, Versions 1 & 2"): version 1 is one line of text,
 * version 2 a binary block with a 12-byte signature.
 */

/** PROXY protocol versions a backend can receive. */
export type ProxyProtocolVersion = "v1" | "v2";

/** One end of a TCP connection. `host` is an IP address as Bun reports it, such as `::ffff:10.0.0.1`. */
export interface ProxyEndpoint {
  host: string;
  port: number;
}

/** The sockets' address getters the header reads; a Unix socket has no `remoteAddress`. */
export interface ProxiedSocket {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

/** The 12 bytes that start every version 2 header. */
const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** Version 2 with the PROXY command: the connection was relayed for the addresses that follow. */
const V2_PROXY = 0x21;
/** Version 2 with the LOCAL command: the connection is the sender's own, such as a health probe. */
const V2_LOCAL = 0x20;
/** Address family and transport bytes of version 2. */
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const V2_UNSPEC = 0x00;

const V1_UNKNOWN = "PROXY UNKNOWN\r\n";

/**
 * Builds the header of a relayed client: the source is the client's address and port, the
 * destination the local address and port it connected to. An IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`, from a dual-stack listener) is sent as IPv4. A client of a Unix socket
 * listener has no address, so it gets `PROXY UNKNOWN` (v1) or the LOCAL command (v2), as
 * HAProxy sends them.
 */
export function encodeProxyHeader(version: ProxyProtocolVersion, source: ProxyEndpoint | undefined, destination: ProxyEndpoint | undefined): Uint8Array {
  const addresses = source === undefined || destination === undefined ? undefined : pairAddresses(source, destination);
  if (addresses === undefined) {
    return encodeLocalProxyHeader(version);
  }

  if (version === "v1") {
    const family = addresses.family === 4 ? "TCP4" : "TCP6";

    return Buffer.from(`PROXY ${family} ${addresses.source} ${addresses.destination} ${source!.port} ${destination!.port}\r\n`, "latin1");
  }

  const ipv4 = addresses.family === 4;
  const sourceBytes = ipv4 ? parseIpv4(addresses.source) : parseIpv6(addresses.source);
  const destinationBytes = ipv4 ? parseIpv4(addresses.destination) : parseIpv6(addresses.destination);
  const addressLength = 2 * sourceBytes.length + 4;
  const header = new Uint8Array(16 + addressLength);
  const view = new DataView(header.buffer);
  header.set(V2_SIGNATURE, 0);
  header[12] = V2_PROXY;
  header[13] = ipv4 ? V2_TCP4 : V2_TCP6;
  view.setUint16(14, addressLength);
  header.set(sourceBytes, 16);
  header.set(destinationBytes, 16 + sourceBytes.length);
  view.setUint16(16 + 2 * sourceBytes.length, source!.port);
  view.setUint16(18 + 2 * sourceBytes.length, destination!.port);

  return header;
}

/**
 * Builds the header of a connection that relays no client, such as a health probe, as
 * HAProxy's `check-send-proxy` does: `PROXY UNKNOWN` (v1), or the LOCAL command with no
 * addresses (v2). A backend then uses the connection's own addresses.
 */
export function encodeLocalProxyHeader(version: ProxyProtocolVersion): Uint8Array {
  if (version === "v1") {
    return Buffer.from(V1_UNKNOWN, "latin1");
  }

  const header = new Uint8Array(16);
  header.set(V2_SIGNATURE, 0);
  header[12] = V2_LOCAL;
  header[13] = V2_UNSPEC;

  return header;
}

/**
 * Builds the header of a client socket from its addresses. Each getter is a getpeername(2) or
 * getsockname(2) call, so call this only when the backend takes the header.
 */
export function proxyHeaderOf(version: ProxyProtocolVersion, client: ProxiedSocket): Uint8Array {
  const remoteAddress = client.remoteAddress;
  if (!remoteAddress) {
    return encodeLocalProxyHeader(version);
  }

  return encodeProxyHeader(version, { host: remoteAddress, port: client.remotePort }, { host: client.localAddress, port: client.localPort });
}

/** Both addresses of a connection in one family, with mapped IPv4 addresses unwrapped. */
interface AddressPair {
  family: 4 | 6;
  source: string;
  destination: string;
}

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** Returns the pair in one family, or undefined when the families differ, which a socket's two ends never do. */
function pairAddresses(source: ProxyEndpoint, destination: ProxyEndpoint): AddressPair | undefined {
  const sourceHost = unmapIpv4(source.host);
  const destinationHost = unmapIpv4(destination.host);
  const sourceFamily = sourceHost.includes(":") ? 6 : 4;
  const destinationFamily = destinationHost.includes(":") ? 6 : 4;
  if (sourceFamily !== destinationFamily) {
    return undefined;
  }

  return { family: sourceFamily, source: sourceHost, destination: destinationHost };
}

function unmapIpv4(host: string): string {
  return MAPPED_IPV4.exec(host)?.[1] ?? host;
}

/**
 * Parses a dotted IPv4 address into 4 bytes.
 *
 * @throws {Error} when `host` is not a dotted IPv4 address.
 */
export function parseIpv4(host: string): Uint8Array {
  const parts = host.split(".");
  const bytes = parts.map(Number);
  if (parts.length !== 4 || bytes.some((byte, index) => !/^\d{1,3}$/.test(parts[index]!) || byte > 255)) {
    throw new Error(`invalid IPv4 address "${host}"`);
  }

  return Uint8Array.from(bytes);
}

/**
 * Parses an IPv6 address into 16 bytes: `::` compression, an IPv4 tail such as
 * `::ffff:10.0.0.1`, and a zone such as `%eth0`, which the header has no room for and drops.
 *
 * @throws {Error} when `host` is not an IPv6 address.
 */
export function parseIpv6(host: string): Uint8Array {
  const invalid = new Error(`invalid IPv6 address "${host}"`);
  const address = host.replace(/%.*$/, "");
  const halves = address.split("::");
  if (halves.length > 2) {
    throw invalid;
  }

  const words = (text: string): number[] => {
    if (text === "") {
      return [];
    }
    const groups = text.split(":");
    const last = groups[groups.length - 1]!;
    const values: number[] = [];
    for (const group of last.includes(".") ? groups.slice(0, -1) : groups) {
      if (!/^[0-9a-f]{1,4}$/i.test(group)) {
        throw invalid;
      }
      values.push(Number.parseInt(group, 16));
    }
    if (last.includes(".")) {
      const ipv4 = parseIpv4(last);
      values.push((ipv4[0]! << 8) | ipv4[1]!, (ipv4[2]! << 8) | ipv4[3]!);
    }

    return values;
  };

  const head = words(halves[0]!);
  const tail = halves.length === 2 ? words(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) {
    throw invalid;
  }

  const bytes = new Uint8Array(16);
  [...head, ...new Array<number>(missing).fill(0), ...tail].forEach((word, index) => {
    bytes[2 * index] = word >> 8;
    bytes[2 * index + 1] = word & 0xff;
  });

  return bytes;
}

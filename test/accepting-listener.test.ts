import { expect, test } from "bun:test";
import { acceptingListenerName, socketLocalAddress } from "../src/accepting-listener.ts";
import type { Address } from "../src/address.ts";
import { formatAddress } from "../src/address.ts";
import type { RelaySocket } from "../src/flow.ts";
import type { BoundListener } from "../src/listener.ts";

function listener(address: Address): BoundListener {
  return { address, name: formatAddress(address), stop: () => {} };
}

/** Returns a stand-in for an accepted socket, with only the local address and port that the functions read. */
function socketAt(localAddress: string | undefined, localPort: number | undefined): RelaySocket {
  return { localAddress, localPort } as unknown as RelaySocket;
}

const tcp = (host: string, port: number): BoundListener => listener({ kind: "tcp", host, port });
const unix = (path: string): BoundListener => listener({ kind: "unix", path });

test.each([
  ["the only listener on the port", [tcp("0.0.0.0", 7443), tcp("127.0.0.1", 9000)], socketAt("10.0.0.5", 7443), "0.0.0.0:7443"],
  ["the exact address among several", [tcp("0.0.0.0", 7443), tcp("127.0.0.1", 7443)], socketAt("127.0.0.1", 7443), "127.0.0.1:7443"],
  ["the wildcard among several", [tcp("127.0.0.1", 7443), tcp("::", 7443)], socketAt("::1", 7443), "[::]:7443"],
  ["the local address without a match", [tcp("127.0.0.1", 9000)], socketAt("127.0.0.1", 7443), "127.0.0.1:7443"],
  ["the only Unix listener", [tcp("127.0.0.1", 7443), unix("/run/tinylb.sock")], socketAt(undefined, undefined), "unix:/run/tinylb.sock"],
  ["unix among several Unix listeners", [unix("/run/a.sock"), unix("/run/b.sock")], socketAt(undefined, undefined), "unix"],
])("acceptingListenerName picks %s", (_case, listeners, socket, name) => {
  expect(acceptingListenerName(listeners, socket)).toBe(name);
});

test.each([
  [socketAt("127.0.0.1", 53124), "127.0.0.1:53124"],
  [socketAt("::1", 40000), "[::1]:40000"],
  [socketAt(undefined, undefined), "unix"],
])("socketLocalAddress formats %p", (socket, address) => {
  expect(socketLocalAddress(socket)).toBe(address);
});

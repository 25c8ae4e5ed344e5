/**
 * The PROXY protocol through dist/tinylb against a real nginx that requires the header on
 * every listener. The cases are v1 and v2 over IPv4, IPv6, a dual-stack listener and a Unix
 * socket listener, bytes queued during a failover, http and https probes, and a reload.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Nginx, nginxInstalled } from "./support/nginx.ts";
import { makeTestPki, type TestPki } from "./support/test-pki.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

if (!nginxInstalled()) {
  console.warn("PROXY protocol tests skipped: nginx is not installed (Debian packages nginx-light and libnginx-mod-stream; .ci/run installs them)");
}
const nginxDescribe = nginxInstalled() ? describe : describe.skip;

/** A client connection's local port and everything it read until the peer closed. */
interface Exchange {
  localPort: number;
  received: string;
}

/** An open client connection whose reads are collected. */
interface OpenClient {
  socket: import("bun").Socket<undefined>;
  localPort: number;
  received(): string;
  closed: Promise<void>;
}

async function openClient(target: { hostname: string; port: number } | { unix: string }, send = ""): Promise<OpenClient> {
  let received = "";
  let closed!: () => void;
  const whenClosed = new Promise<void>((resolve) => (closed = resolve));
  const socket = await Bun.connect({
    ...target,
    socket: {
      open(opened) {
        if (send !== "") {
          opened.write(send);
        }
      },
      data(_socket, chunk) {
        received += chunk.toString();
      },
      close() {
        closed();
      },
      error() {},
    },
  } as Parameters<typeof Bun.connect>[0]) as import("bun").Socket<undefined>;

  return { socket, localPort: socket.localPort, received: () => received, closed: whenClosed };
}

/** Connects, sends `send` at once, and resolves with what came back before the close. */
async function exchange(target: { hostname: string; port: number } | { unix: string }, send = ""): Promise<Exchange> {
  const client = await openClient(target, send);
  await within("the backend's reply and close", client.closed);

  return { localPort: client.localPort, received: client.received() };
}

nginxDescribe("PROXY protocol", () => {
  const directory = tempDirectory("tinylb-proxy-protocol-");
  let nginx: Nginx;
  let pki: TestPki;

  beforeAll(async () => {
    pki = makeTestPki();
    nginx = await Nginx.start({ cert: pki.serverCert, key: pki.serverKey });
  });

  afterAll(async () => {
    await nginx?.stop();
    pki?.remove();
  });

  // A listener on [::] accepts IPv4 clients as ::ffff:127.0.0.1, which the header carries as IPv4.
  test.each([
    ["v1", "IPv4", "127.0.0.1:0", "127.0.0.1", "127.0.0.1"],
    ["v2", "IPv4", "127.0.0.1:0", "127.0.0.1", "127.0.0.1"],
    ["v1", "IPv6", "[::1]:0", "[::1]", "::1"],
    ["v2", "IPv6", "[::1]:0", "[::1]", "::1"],
    ["v1", "mapped IPv4", "[::]:0", "127.0.0.1", "127.0.0.1"],
    ["v2", "mapped IPv4", "[::]:0", "127.0.0.1", "127.0.0.1"],
  ])("%s over %s names the client and listener", async (version, _family, listen, backendHost, clientHost) => {
    await using tinylb = TinylbProcess.start(["--listen", listen, "--backend", `nginx=${backendHost}:${nginx.streamPort}`, "--proxy-protocol", version]);
    await tinylb.waitForLog("listening");
    const port = listenedPort(tinylb.stderr);

    const result = await exchange({ hostname: clientHost, port });

    expect(result.received).toBe(`${clientHost} ${result.localPort} ${clientHost} ${port}\n`);
  });

  test.each(["v1", "v2"])("%s sends no address for a Unix socket client", async (version) => {
    const socketPath = join(directory, `listen-${version}.sock`);
    await using tinylb = TinylbProcess.start(["--listen", `unix:${socketPath}`, "--backend", `nginx=127.0.0.1:${nginx.streamPort}`, "--proxy-protocol", version]);
    await tinylb.waitForLog("listening");

    const result = await exchange({ unix: socketPath });

    // nginx leaves the addresses empty for PROXY UNKNOWN and for the LOCAL command.
    expect(result.received).toBe("   \n");
  });

  test("failover sends queued bytes after the header", async () => {
    // Backends are tried in id order, so the first client dials the missing socket first.
    const missing = join(directory, "missing.sock");
    await using tinylb = TinylbProcess.start([
      "--listen", "127.0.0.1:0",
      "--backend", `a-missing=unix:${missing}`,
      "--backend", `b-nginx=127.0.0.1:${nginx.httpPort}`,
      "--proxy-protocol", "v2",
      "--log-level", "debug",
    ]);
    await tinylb.waitForLog("listening");
    const port = listenedPort(tinylb.stderr);

    // The request is written as soon as the client connects, before any backend is dialled.
    const result = await exchange({ hostname: "127.0.0.1", port }, "GET /queued/bytes?x=1 HTTP/1.0\r\nHost: localhost\r\n\r\n");

    expect(tinylb.stderr).toMatch(/dial failed .*backend=a-missing /);
    expect(result.received).toStartWith("HTTP/1.1 200 OK\r\n");
    expect(result.received).toEndWith("\r\n\r\nhttp 127.0.0.1 /queued/bytes?x=1\n");
  });

  test.each([
    ["http", [] as string[]],
    ["https", ["--probe-ca", "CA"]],
  ])("%s probe of a backend that requires the header passes", async (kind, extra) => {
    const backendPort = kind === "http" ? nginx.httpPort : nginx.httpsPort;
    const path = `/probe-${kind}`;
    const args = extra.map((arg) => (arg === "CA" ? pki.caCert : arg));
    await using tinylb = TinylbProcess.start([
      "--listen", "127.0.0.1:0",
      "--backend", `nginx=127.0.0.1:${backendPort}`,
      "--proxy-protocol", "v1",
      "--probe", kind, "--probe-path", path, "--probe-interval", "100ms",
      "--log-level", "debug",
      ...args,
    ]);
    await tinylb.waitForLog("listening");

    // A probe writes PROXY UNKNOWN, so nginx logs no client address ("-") for it.
    await waitFor("two probes in nginx's access log", () => nginx.accessLog().filter((line) => line === `${backendPort} 200 - ${path}`).length >= 2);
    expect(tinylb.stderr).not.toContain("probe failed");
  });

  test("reload from off to v2 applies to new connections only", async () => {
    const config = join(directory, "reload.yaml");
    const adminPath = join(directory, "admin.sock");
    const write = (mode: string): void => writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - id: nginx\n    target: 127.0.0.1:${nginx.streamPort}\nproxyProtocol: ${mode}\n`);
    write("off");
    await using tinylb = TinylbProcess.start(["--config", config, "--admin", `unix:${adminPath}`, "--no-watch-config"]);
    await tinylb.waitForLog("listening");
    const port = listenedPort(tinylb.stderr);

    // Accepted under off: nginx still waits for a header, and tinylb sent none.
    const before = await openClient({ hostname: "127.0.0.1", port });
    await waitFor("the first connection to open", async () => JSON.parse((await runTinylb(["status", "--json", "--admin", `unix:${adminPath}`])).stdout).backends[0].active === 1);

    write("v2");
    tinylb.signal("SIGHUP");
    await tinylb.waitForLog("proxyProtocol=off->v2");
    const status = JSON.parse((await runTinylb(["status", "--json", "--admin", `unix:${adminPath}`])).stdout);
    expect(status.backends[0].proxyProtocol).toBe("v2");

    const after = await exchange({ hostname: "127.0.0.1", port });
    expect(after.received).toBe(`127.0.0.1 ${after.localPort} 127.0.0.1 ${port}\n`);

    // The first connection kept off: the header nginx reads is the one its client writes.
    before.socket.write("PROXY TCP4 192.0.2.1 198.51.100.1 1111 2222\r\n");
    await within("the first connection's reply and close", before.closed);
    expect(before.received()).toBe("192.0.2.1 1111 198.51.100.1 2222\n");
  });
});

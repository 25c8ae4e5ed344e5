import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { Server as HttpServer } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Backend, createBackend } from "../src/backend.ts";
import { type ProbeOverrides, resolveProbeSettings, runProbe } from "../src/probes/probe.ts";
import { ProbeError } from "../src/probes/probe-error.ts";
import { TestBackend } from "./support/backends.ts";
import { StalledListener } from "./support/stalled-listener.ts";
import { synSentTo } from "./support/syn-sent.ts";
import { makeTestPki, type TestPki } from "./support/test-pki.ts";
import { waitFor, within } from "./support/wait.ts";

let pki: TestPki;
let dir: string;
beforeAll(() => {
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), "tinylb-probes-"));
});
afterAll(() => {
  pki.remove();
  rmSync(dir, { recursive: true, force: true });
});

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Runs one probe with `overrides` and returns "pass" or the failure message. */
async function probe(backend: Backend, overrides: ProbeOverrides, signal: AbortSignal): Promise<string> {
  const settings = resolveProbeSettings(overrides)!;
  try {
    await runProbe(backend, settings, signal);

    return "pass";
  } catch (error) {
    expect(error).toBeInstanceOf(ProbeError);

    return (error as Error).message;
  }
}

function neverAborted(): AbortSignal {
  return new AbortController().signal;
}

function serve(options: Partial<Bun.Serve.Options<undefined>> & { fetch: (request: Request) => Response | Promise<Response> }): HttpServer<undefined> {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, ...options } as Bun.Serve.Options<undefined>);
  cleanup.push(() => server.stop(true));

  return server;
}

function backendOf(server: HttpServer<undefined>): Backend {
  return createBackend("api-1", `127.0.0.1:${server.port}`);
}

function readyz(status: number): (request: Request) => Response {
  return (request) => new Response(new URL(request.url).pathname, { status: new URL(request.url).pathname === "/readyz" ? status : 404 });
}

test.each<[string, ProbeOverrides, ProbeOverrides | undefined, number]>([
  ["default interval", { kind: "tcp" }, undefined, 2000],
  ["shorter interval", { kind: "tcp", intervalMs: 1000 }, undefined, 1000],
  ["backend's shorter interval", { kind: "tcp" }, { intervalMs: 500 }, 500],
  ["backend's longer interval", { kind: "tcp", intervalMs: 1000 }, { intervalMs: 10_000 }, 2000],
  ["timeout that is set", { kind: "tcp", intervalMs: 1000, timeoutMs: 800 }, { intervalMs: 500 }, 800],
])("probe default timeout with %s", (_, balancer, backend, timeoutMs) => {
  expect(resolveProbeSettings(balancer, backend)!.timeoutMs).toBe(timeoutMs);
});

test("tcp probe passes against a listener", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());

  expect(await probe(createBackend("a", backend.target), { kind: "tcp" }, neverAborted())).toBe("pass");
  expect(backend.accepted).toBe(1);
});

test("tcp probe fails for a missing Unix socket", async () => {
  const result = await probe(createBackend("a", `unix:${dir}/missing.sock`), { kind: "tcp" }, neverAborted());

  expect(result).toBe("no socket exists at that path (ENOENT)");
});

test.each([
  ["tcp probe", { kind: "tcp" }],
  ["http probe", { kind: "http" }],
  ["https probe", { kind: "https" }],
  ["https probe with a PROXY header", { kind: "https", proxyProtocol: "v2" }],
] as [string, ProbeOverrides & { proxyProtocol?: "v2" }][])("%s closes a pending connect at abort", async (_name, overrides) => {
  const blackhole = await StalledListener.start();
  cleanup.push(() => blackhole.stop());
  const before = synSentTo(blackhole.port);
  const { proxyProtocol, ...probeOverrides } = overrides;
  const settings = { ...resolveProbeSettings(probeOverrides)!, proxyProtocol };
  const controller = new AbortController();

  const result = runProbe(createBackend("a", blackhole.target), settings, controller.signal).then(
    () => "pass",
    (error: Error) => error.message,
  );
  await waitFor("the probe's connect to be in flight", () => synSentTo(blackhole.port) - before === 1, 2000);
  controller.abort();

  expect(synSentTo(blackhole.port) - before).toBe(0);
  expect(await within("aborted probe to settle", result, 2000)).toBe("probe aborted");
});

test.each([
  [200, [200], "pass"],
  [500, [200], "GET /readyz returned status 500, expected 200"],
  [400, [200], "GET /readyz returned status 400, expected 200; if the port serves TLS, as a kube-apiserver's does, set probe.kind to https (--probe https)"],
  [204, [200, 204], "pass"],
  [503, [200, 204], "GET /readyz returned status 503, expected 200 or 204"],
])("http probe with status %d and expected %p", async (status, expectStatus, outcome) => {
  const server = serve({ fetch: readyz(status) });

  expect(await probe(backendOf(server), { kind: "http", path: "/readyz", expectStatus }, neverAborted())).toBe(outcome);
});

test("http probe sends Host and the path", async () => {
  const seen: string[] = [];
  const server = serve({
    fetch: (request) => {
      seen.push(`${request.headers.get("host")} ${new URL(request.url).pathname}`);

      return new Response("ok");
    },
  });

  expect(await probe(backendOf(server), { kind: "http", path: "/livez" }, neverAborted())).toBe("pass");
  expect(seen).toEqual([`127.0.0.1:${server.port} /livez`]);
});

test("http probe over a Unix socket", async () => {
  const path = join(dir, "api.sock");
  const server = Bun.serve({ unix: path, fetch: readyz(200) });
  cleanup.push(() => server.stop(true));

  expect(await probe(createBackend("a", `unix:${path}`), { kind: "http", path: "/readyz" }, neverAborted())).toBe("pass");
});

test("http probe fails on a response that is not HTTP", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());

  const result = await probe(createBackend("a", backend.target), { kind: "http" }, neverAborted());

  expect(result).toStartWith("the response is not HTTP");
});

test("http probe sends the bearer token and never shows it", async () => {
  const token = "s3cret-token-value";
  const server = serve({
    fetch: (request) => new Response(null, { status: request.headers.get("authorization") === `Bearer ${token}` ? 200 : 401 }),
  });
  const goodFile = join(dir, "token");
  writeFileSync(goodFile, `${token}\n`);
  const wrongFile = join(dir, "wrong-token");
  writeFileSync(wrongFile, "not-the-token");

  expect(await probe(backendOf(server), { kind: "http", bearerTokenFile: goodFile }, neverAborted())).toBe("pass");
  const wrong = await probe(backendOf(server), { kind: "http", bearerTokenFile: wrongFile }, neverAborted());
  expect(wrong).toBe("GET / returned status 401, expected 200");
  const missing = await probe(backendOf(server), { kind: "http", bearerTokenFile: join(dir, "absent") }, neverAborted());
  expect(missing).toContain(`read bearer token file ${join(dir, "absent")} failed: the file does not exist`);
  for (const message of [wrong, missing]) {
    expect(message).not.toContain(token);
  }
});

test("http probe stops at abort and closes its socket", async () => {
  let opened = 0;
  let closed = 0;
  const silent = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: () => void opened++,
      data: () => {},
      close: () => void closed++,
    },
  });
  cleanup.push(() => silent.stop(true));
  const controller = new AbortController();

  const result = probe(createBackend("a", `127.0.0.1:${silent.port}`), { kind: "http" }, controller.signal);
  await Bun.sleep(100);
  controller.abort();

  expect(await within("aborted probe to settle", result, 2000)).toBe("probe aborted");
  await waitFor("the backend to see the close", () => closed === 1, 2000);
  expect(opened).toBe(1);
});

function httpsServer(options: { cert: string; key: string; requestCert?: boolean }): HttpServer<undefined> {
  return serve({
    tls: {
      cert: Bun.file(options.cert),
      key: Bun.file(options.key),
      ca: options.requestCert ? Bun.file(pki.caCert) : undefined,
      requestCert: options.requestCert,
      rejectUnauthorized: options.requestCert,
    },
    fetch: readyz(200),
  });
}

test("http probe on a TLS port hints at https", async () => {
  const server = httpsServer({ cert: pki.serverCert, key: pki.serverKey });

  const result = await probe(backendOf(server), { kind: "http", path: "/readyz" }, neverAborted());

  expect(result).toEndWith("; if the port serves TLS, as a kube-apiserver's does, set probe.kind to https (--probe https)");
});

test("http probe names a TLS alert record", async () => {
  // A TLS server's alert (level 2, protocol_version) to a request that is not a ClientHello.
  const alert = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (socket) => void socket.end(new Uint8Array([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46])) } });
  cleanup.push(() => alert.stop(true));

  const result = await probe(createBackend("a", `127.0.0.1:${alert.port}`), { kind: "http" }, neverAborted());

  expect(result).toBe("the response is a TLS record, not HTTP; if the port serves TLS, as a kube-apiserver's does, set probe.kind to https (--probe https)");
});

test("https probe verifies the CA", async () => {
  const server = httpsServer({ cert: pki.serverCert, key: pki.serverKey });
  const backend = backendOf(server);

  expect(await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.caCert } }, neverAborted())).toBe("pass");
  const stranger = await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.strangerCaCert } }, neverAborted());
  expect(stranger).toStartWith("TLS handshake failed");
  expect(stranger).toContain(`the CA file ${pki.strangerCaCert} does not include the CA that signed the backend's certificate; set probe.tls.ca (or --probe-ca) to that CA`);
  const noCa = await probe(backend, { kind: "https", path: "/readyz" }, neverAborted());
  expect(noCa).toContain("the runtime's default CA list does not include the CA that signed the backend's certificate; set probe.tls.ca (or --probe-ca)");
  const insecure = await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.strangerCaCert, insecureSkipVerify: true } }, neverAborted());
  expect(insecure).toBe("pass");
});

test("https probe fails for a missing CA file", async () => {
  const server = httpsServer({ cert: pki.serverCert, key: pki.serverKey });

  const result = await probe(backendOf(server), { kind: "https", tls: { caFile: join(dir, "absent.crt") } }, neverAborted());

  expect(result).toContain(`read CA file ${join(dir, "absent.crt")} failed: the file does not exist`);
});

test("https probe sends the server name as SNI", async () => {
  // The server picks its certificate by SNI; without it, it serves the first one.
  const server = serve({
    tls: [
      { cert: Bun.file(pki.otherCert), key: Bun.file(pki.otherKey), serverName: "other.test" },
      { cert: Bun.file(pki.serverCert), key: Bun.file(pki.serverKey), serverName: "kubernetes" },
    ],
    fetch: readyz(200),
  });
  const backend = backendOf(server);
  const withName = (serverName?: string): ProbeOverrides => ({ kind: "https", path: "/readyz", tls: { caFile: pki.caCert, serverName } });

  expect(await probe(backend, withName("kubernetes"), neverAborted())).toBe("pass");
  expect(await probe(backend, withName("other.test"), neverAborted())).toBe("pass");
  const mismatch = await probe(backend, withName("not-in-any-cert.test"), neverAborted());
  expect(mismatch).toStartWith("TLS handshake failed");
  expect(mismatch).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
  expect(mismatch).toContain('the certificate does not name "not-in-any-cert.test"; set probe.tls.serverName (or --probe-server-name)');
});

test("https probe names the server name setting on a mismatch", async () => {
  // This certificate names other.test only, and the probe checks it against the target's IP.
  const server = httpsServer({ cert: pki.otherCert, key: pki.otherKey });
  const backend = backendOf(server);

  const mismatch = await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.caCert } }, neverAborted());
  expect(mismatch).toBe(
    'TLS handshake failed: the certificate does not name "127.0.0.1"; set probe.tls.serverName (or --probe-server-name) to a name in the certificate (ERR_TLS_CERT_ALTNAME_INVALID)',
  );
  expect(await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.caCert, serverName: "other.test" } }, neverAborted())).toBe("pass");
});

test("https probe presents a client certificate", async () => {
  const server = httpsServer({ cert: pki.serverCert, key: pki.serverKey, requestCert: true });
  const backend = backendOf(server);

  const withCert = await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.caCert, certFile: pki.clientCert, keyFile: pki.clientKey } }, neverAborted());
  expect(withCert).toBe("pass");
  const without = await probe(backend, { kind: "https", path: "/readyz", tls: { caFile: pki.caCert } }, neverAborted());
  expect(without).toContain("CERTIFICATE_REQUIRED");
  expect(without).toEndWith("; the backend requires a client certificate, so set probe.tls.cert and probe.tls.key");
});

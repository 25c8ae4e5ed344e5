import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../src/config.ts";
import { currentBearerToken, describeCredentials, type KubernetesAccess, loadInClusterAccess, loadKubeconfig } from "../src/providers/kubernetes-access.ts";

const CA = "-----BEGIN CERTIFICATE-----\ntest-ca\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\ntest-client\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\ntest-key\n-----END PRIVATE KEY-----\n";
const base64 = (text: string): string => Buffer.from(text).toString("base64");

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tinylb-kubeconfig-"));
  writeFileSync(join(dir, "ca.crt"), CA);
  writeFileSync(join(dir, "client.crt"), CERT);
  writeFileSync(join(dir, "client.key"), KEY);
  writeFileSync(join(dir, "token"), "file-token\n");
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a kubeconfig with one cluster, the given users and a context per user; returns its path. */
function writeKubeconfig(name: string, cluster: Record<string, unknown>, users: Record<string, Record<string, unknown>>, currentContext?: string): string {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    "current-context": currentContext,
    clusters: [{ name: "test", cluster }],
    contexts: Object.keys(users).map((user) => ({ name: user, context: { cluster: "test", user, namespace: "kube-system" } })),
    users: Object.entries(users).map(([user, fields]) => ({ name: user, user: fields })),
    preferences: {},
  };
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config));

  return path;
}

test("loadKubeconfig reads embedded data", () => {
  const path = writeKubeconfig(
    "embedded.yaml",
    { server: "https://10.0.0.1:6443/", "certificate-authority-data": base64(CA) },
    { admin: { "client-certificate-data": base64(CERT), "client-key-data": base64(KEY) } },
    "admin",
  );

  const access = loadKubeconfig(path);

  expect(access.server).toBe("https://10.0.0.1:6443");
  expect(access.tlsServerName).toBe("10.0.0.1");
  expect(access.caPem).toBe(CA);
  expect(access.clientCertificate).toEqual({ certPem: CERT, keyPem: KEY });
  expect(access.bearerToken).toBeUndefined();
  expect(access.source).toBe(path);
});

test("loadKubeconfig resolves files against its directory", () => {
  const path = writeKubeconfig(
    "files.yaml",
    { server: "https://[fd00::1]:6443", "certificate-authority": "ca.crt", "tls-server-name": "kubernetes.default.svc" },
    { reader: { tokenFile: "token" }, admin: { "client-certificate": join(dir, "client.crt"), "client-key": "client.key" } },
    "admin",
  );

  const admin = loadKubeconfig(path);
  expect(admin.caPem).toBe(CA);
  expect(admin.tlsServerName).toBe("kubernetes.default.svc");
  expect(admin.clientCertificate).toEqual({ certPem: CERT, keyPem: KEY });
  expect(admin.files).toEqual([
    { setting: "kubernetes.kubeconfig", path },
    { setting: `certificate-authority of kubeconfig ${path}`, path: join(dir, "ca.crt") },
    { setting: `client-certificate of kubeconfig ${path}`, path: join(dir, "client.crt") },
    { setting: `client-key of kubeconfig ${path}`, path: join(dir, "client.key") },
  ]);

  const reader = loadKubeconfig(path, "reader");
  expect(reader.bearerTokenFile).toBe(join(dir, "token"));
  expect(currentBearerToken(reader)).toBe("file-token");
});

test("loadKubeconfig takes the IPv6 host without brackets as the server name", () => {
  const path = writeKubeconfig("v6.yaml", { server: "https://[fd00::1]:6443", "certificate-authority-data": base64(CA) }, { admin: { token: "t" } }, "admin");

  expect(loadKubeconfig(path).tlsServerName).toBe("fd00::1");
  expect(currentBearerToken(loadKubeconfig(path))).toBe("t");
});

test.each([
  ["no current context", { server: "https://a:6443", "certificate-authority-data": base64(CA) }, { admin: { token: "t" } }, undefined, "no current-context is set"],
  ["unknown context", { server: "https://a:6443", "certificate-authority-data": base64(CA) }, { admin: { token: "t" } }, "missing", 'context "missing" not found (contexts: admin)'],
  ["plain http", { server: "http://a:8080", "certificate-authority-data": base64(CA) }, { admin: { token: "t" } }, "admin", 'server "http://a:8080" must use https'],
  ["skipped verification", { server: "https://a:6443", "insecure-skip-tls-verify": true }, { admin: { token: "t" } }, "admin", "insecure-skip-tls-verify is not supported"],
  ["no CA", { server: "https://a:6443" }, { admin: { token: "t" } }, "admin", "no certificate-authority or certificate-authority-data"],
  ["missing CA file", { server: "https://a:6443", "certificate-authority": "nope.crt" }, { admin: { token: "t" } }, "admin", "nope.crt"],
  ["exec plugin", { server: "https://a:6443", "certificate-authority-data": base64(CA) }, { admin: { exec: { command: "aws" } } }, "admin", "exec and auth-provider credential plugins are not supported"],
  ["certificate without key", { server: "https://a:6443", "certificate-authority-data": base64(CA) }, { admin: { "client-certificate-data": base64(CERT) } }, "admin", "client certificate without its key"],
  ["no credentials", { server: "https://a:6443", "certificate-authority-data": base64(CA) }, { admin: { username: "u", password: "p" } }, "admin", "no client certificate, token or tokenFile"],
])("loadKubeconfig rejects %s", (_case, cluster, users, context, message) => {
  const path = writeKubeconfig("invalid.yaml", cluster, users as Record<string, Record<string, unknown>>, context);

  expect(() => loadKubeconfig(path)).toThrow(ConfigError);
  expect(() => loadKubeconfig(path)).toThrow(message);
});

test.each([
  ["plain http", "http://admin:secret-password@a:8080", 'server "http://***@a:8080" must use https'],
  ["not a URL", "https://admin:secret-password@a:port", 'server "https://***@a:port" is not a URL'],
])("loadKubeconfig masks the password of %s", (_case, server, message) => {
  const path = writeKubeconfig("password.yaml", { server, "certificate-authority-data": base64(CA) }, { admin: { token: "t" } }, "admin");

  expect(() => loadKubeconfig(path)).toThrow(message);
  expect(() => loadKubeconfig(path)).not.toThrow("secret-password");
});

test.each([
  ["a client certificate", { clientCertificate: { certPem: "c", keyPem: "k" } }, "the client certificate of the user in kubeconfig /etc/tinylb/kubeconfig"],
  ["a token file", { bearerTokenFile: "/etc/tinylb/token" }, "the token file /etc/tinylb/token of the user in kubeconfig /etc/tinylb/kubeconfig"],
  ["a token", { bearerToken: "t" }, "the token of the user in kubeconfig /etc/tinylb/kubeconfig"],
  ["no credentials", {}, "the user in kubeconfig /etc/tinylb/kubeconfig, which has no token or client certificate"],
  ["a service account", { bearerTokenFile: "/sa/token", source: "service account /sa" }, "the token file /sa/token of service account /sa"],
])("describeCredentials names %s", (_case, fields, description) => {
  const access: KubernetesAccess = { server: "https://a:6443", tlsServerName: "a", caPem: CA, source: "/etc/tinylb/kubeconfig", ...fields };

  expect(describeCredentials(access)).toBe(description);
});

test("loadKubeconfig names a missing file", () => {
  const path = join(dir, "absent.yaml");

  expect(() => loadKubeconfig(path)).toThrow(`read kubeconfig ${path} failed: the file does not exist`);
});

test("loadKubeconfig names the config file and key", () => {
  const path = join(dir, "absent.yaml");

  expect(() => loadKubeconfig(path, undefined, "/etc/tinylb/tinylb.yaml")).toThrow(
    `invalid config /etc/tinylb/tinylb.yaml: kubernetes.kubeconfig: cannot read ${path}: the file does not exist`,
  );
});

test("loadInClusterAccess uses the service account", () => {
  const accountDir = join(dir, "serviceaccount");
  mkdirSync(accountDir, { recursive: true });
  writeFileSync(join(accountDir, "token"), "sa-token-1\n");
  writeFileSync(join(accountDir, "ca.crt"), CA);

  const access = loadInClusterAccess({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, accountDir);

  expect(access.server).toBe("https://10.96.0.1:443");
  expect(access.tlsServerName).toBe("10.96.0.1");
  expect(access.caPem).toBe(CA);
  expect(currentBearerToken(access)).toBe("sa-token-1");

  // Projected service account tokens rotate; each request reads the file again.
  writeFileSync(join(accountDir, "token"), "sa-token-2\n");
  expect(currentBearerToken(access)).toBe("sa-token-2");
});

test("loadInClusterAccess brackets an IPv6 service host", () => {
  const accountDir = join(dir, "serviceaccount-v6");
  mkdirSync(accountDir, { recursive: true });
  writeFileSync(join(accountDir, "token"), "t\n");
  writeFileSync(join(accountDir, "ca.crt"), CA);

  const access = loadInClusterAccess({ KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "443" }, accountDir);

  expect(access.server).toBe("https://[fd00:10:96::1]:443");
  expect(access.tlsServerName).toBe("fd00:10:96::1");
});

test("loadInClusterAccess needs the service variables", () => {
  expect(() => loadInClusterAccess({}, dir)).toThrow("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
});

test("loadInClusterAccess needs the token file", () => {
  const empty = join(dir, "no-account");
  mkdirSync(empty, { recursive: true });

  expect(() => loadInClusterAccess({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, empty)).toThrow(ConfigError);
});

test("currentBearerToken rejects an empty token file", () => {
  writeFileSync(join(dir, "empty-token"), "\n");

  expect(() => currentBearerToken({ server: "https://a", tlsServerName: "a", caPem: CA, bearerTokenFile: join(dir, "empty-token"), source: "test" })).toThrow("is empty");
});

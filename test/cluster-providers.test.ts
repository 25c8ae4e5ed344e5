import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Address } from "../src/address.ts";
import { createClusterProviders, listenerRoute, loadClusterCredentials } from "../src/cluster-providers.ts";
import { ConfigError, validateConfig } from "../src/config.ts";
import { silentLogger } from "../src/logger.ts";
import { Server } from "../src/server.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-cluster-config-");

function configError(data: unknown): string {
  try {
    validateConfig("tinylb.yaml", data);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);

    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(data)} to be rejected`);
}

test("config reads the kubernetes section with defaults", () => {
  const config = validateConfig("tinylb.yaml", { kubernetes: { kubeconfig: "/etc/tinylb/kubeconfig" } });

  expect(config.kubernetes).toEqual({ kubeconfig: "/etc/tinylb/kubeconfig", inCluster: false, viaListener: true });
});

test("config reads every kubernetes key", () => {
  const config = validateConfig("tinylb.yaml", { kubernetes: { inCluster: true, viaListener: false, tlsServerName: "kubernetes.default.svc", context: "ignored-in-cluster" } });

  expect(config.kubernetes).toEqual({ inCluster: true, viaListener: false, tlsServerName: "kubernetes.default.svc", context: "ignored-in-cluster" });
});

test("config reads the etcd section", () => {
  const config = validateConfig("tinylb.yaml", {
    etcd: { endpoints: ["http://127.0.0.1:2379", "https://[::1]:2379/"], prefix: "/tinylb/backends/", caFile: "/ca.pem", certFile: "/c.pem", keyFile: "/k.pem" },
  });

  expect(config.etcd).toEqual({ endpoints: ["http://127.0.0.1:2379", "https://[::1]:2379/"], prefix: "/tinylb/backends/", caFile: "/ca.pem", certFile: "/c.pem", keyFile: "/k.pem" });
});

test.each([
  ["neither kubeconfig nor inCluster", { kubernetes: {} }, "kubernetes: set exactly one of kubeconfig or inCluster: true"],
  ["both kubeconfig and inCluster", { kubernetes: { kubeconfig: "/k", inCluster: true } }, "kubernetes: set exactly one of kubeconfig or inCluster: true"],
  ["an unknown kubernetes key", { kubernetes: { kubeconfig: "/k", namespace: "kube-system" } }, 'kubernetes: unknown key "namespace"; valid keys: kubeconfig, inCluster, context, viaListener, tlsServerName'],
  ["no etcd endpoints", { etcd: { endpoints: [], prefix: "/p/" } }, "etcd.endpoints"],
  ["an etcd endpoint without a scheme", { etcd: { endpoints: ["127.0.0.1:2379"], prefix: "/p/" } }, 'etcd.endpoints[0]: expected an http:// or https:// URL with a host and port, such as http://10.0.0.11:2379 (got "127.0.0.1:2379")'],
  ["an etcd endpoint with a path", { etcd: { endpoints: ["http://127.0.0.1:2379/v3"], prefix: "/p/" } }, "etcd.endpoints[0]: expected an http:// or https:// URL"],
  [
    "an etcd endpoint with a password",
    { etcd: { endpoints: ["http://root:hunter2@127.0.0.1:2379"], prefix: "/p/" } },
    'etcd.endpoints[0]: a user name or password in the URL is not supported, because tinylb has no etcd user authentication; remove it and authenticate with client certificates (certFile and keyFile) (got "http://***@127.0.0.1:2379")',
  ],
  ["an empty etcd prefix", { etcd: { endpoints: ["http://127.0.0.1:2379"], prefix: "" } }, "etcd.prefix"],
  ["an etcd certificate without its key", { etcd: { endpoints: ["http://127.0.0.1:2379"], prefix: "/p/", certFile: "/c.pem" } }, "etcd: set certFile and keyFile together"],
])("config rejects %s", (_case, data, message) => {
  expect(configError(data)).toContain(message);
});

test.each<[string, Address, { url: string; unixPath?: string }]>([
  ["a loopback address", { kind: "tcp", host: "127.0.0.1", port: 7443 }, { url: "https://127.0.0.1:7443" }],
  ["the IPv4 wildcard", { kind: "tcp", host: "0.0.0.0", port: 7443 }, { url: "https://127.0.0.1:7443" }],
  ["the IPv6 wildcard", { kind: "tcp", host: "::", port: 7443 }, { url: "https://[::1]:7443" }],
  ["an IPv6 address", { kind: "tcp", host: "fd00::5", port: 7443 }, { url: "https://[fd00::5]:7443" }],
  ["a Unix socket", { kind: "unix", path: "/run/tinylb.sock" }, { url: "https://localhost", unixPath: "/run/tinylb.sock" }],
])("listenerRoute reaches %s", (_case, address, route) => {
  expect(listenerRoute(address)).toEqual(route);
});

test("listenerRoute is undefined before a listener is bound", () => {
  expect(listenerRoute(undefined)).toBeUndefined();
});

/** Writes a kubeconfig for https://10.0.0.1:6443 with a token user and returns its path. */
function writeKubeconfig(name: string): string {
  const kubeconfig = join(directory, name);
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      "current-context": "c",
      clusters: [{ name: "k", cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": Buffer.from("ca").toString("base64") } }],
      contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
      users: [{ name: "u", user: { token: "t" } }],
    }),
  );

  return kubeconfig;
}

test("createClusterProviders names the providers", () => {
  const server = new Server({ listen: [] });
  const kubeconfig = writeKubeconfig("kubeconfig.yaml");

  const providers = createClusterProviders(
    {
      kubernetes: { kubeconfig, inCluster: false, viaListener: true },
      etcd: { endpoints: ["http://127.0.0.1:2379"], prefix: "/tinylb/backends/" },
    },
    server,
    silentLogger,
  );

  expect(providers.map((provider) => provider.name)).toEqual(["kubernetes", "etcd:/tinylb/backends/"]);
});

test("createClusterProviders rejects an unreadable etcd CA file", () => {
  const server = new Server({ listen: [] });
  const missing = join(directory, "missing-ca.pem");

  expect(() => createClusterProviders({ etcd: { endpoints: ["https://127.0.0.1:2379"], prefix: "/p/", caFile: missing } }, server, silentLogger)).toThrow(ConfigError);
  expect(() => createClusterProviders({ etcd: { endpoints: ["https://127.0.0.1:2379"], prefix: "/p/", caFile: missing } }, server, silentLogger)).toThrow(`read etcd TLS file ${missing} failed: the file does not exist`);
});

test("createClusterProviders rejects a missing kubeconfig", () => {
  const server = new Server({ listen: [] });
  const missing = join(directory, "absent-kubeconfig");

  expect(() => createClusterProviders({ kubernetes: { kubeconfig: missing, inCluster: false, viaListener: true } }, server, silentLogger)).toThrow(ConfigError);
});

test("loadClusterCredentials applies tlsServerName and reads etcd files", () => {
  const kubeconfig = writeKubeconfig("kubeconfig-credentials.yaml");
  const caFile = join(directory, "etcd-ca.pem");
  writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\n");

  const credentials = loadClusterCredentials({
    kubernetes: { kubeconfig, inCluster: false, viaListener: true, tlsServerName: "kubernetes" },
    etcd: { endpoints: ["https://127.0.0.1:2379"], prefix: "/p/", caFile },
  });

  expect(credentials.kubernetes?.server).toBe("https://10.0.0.1:6443");
  expect(credentials.kubernetes?.tlsServerName).toBe("kubernetes");
  expect(credentials.etcdTls).toEqual({ caPem: "-----BEGIN CERTIFICATE-----\n", certPem: undefined, keyPem: undefined });
});

test("createClusterProviders reads no file when given credentials", () => {
  const server = new Server({ listen: [] });
  const missing = join(directory, "never-read-ca.pem");
  const etcd = { endpoints: ["https://127.0.0.1:2379"], prefix: "/p/", caFile: missing };

  const providers = createClusterProviders({ etcd }, server, silentLogger, { etcdTls: { caPem: "-----BEGIN CERTIFICATE-----\n" } });

  expect(providers.map((provider) => provider.name)).toEqual(["etcd:/p/"]);
});

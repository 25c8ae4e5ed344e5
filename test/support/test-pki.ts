import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files of a throwaway CA and certificates it signed, made with the openssl command. */
export interface TestPki {
  dir: string;
  caCert: string;
  /** Server certificate for the name `kubernetes` and the IP 127.0.0.1. */
  serverCert: string;
  serverKey: string;
  /** Server certificate for the name `other.test` only, signed by the same CA. */
  otherCert: string;
  otherKey: string;
  /** Client certificate (extended key usage clientAuth). */
  clientCert: string;
  clientKey: string;
  /** A second CA that signed nothing here, for "wrong CA" cases. */
  strangerCaCert: string;
  /** Deletes the folder. */
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  const result = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed with exit code ${result.exitCode}: ${result.stderr.toString()}`);
  }
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`]);
}

function makeLeaf(dir: string, name: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions + "\n");
  openssl(dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`]);
}

/** Creates a CA, server and client certificates in a new temporary folder. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-pki-"));
  makeCa(dir, "ca");
  makeCa(dir, "stranger-ca");
  makeLeaf(dir, "server", "subjectAltName=DNS:kubernetes,IP:127.0.0.1\nextendedKeyUsage=serverAuth");
  makeLeaf(dir, "other", "subjectAltName=DNS:other.test\nextendedKeyUsage=serverAuth");
  makeLeaf(dir, "client", "extendedKeyUsage=clientAuth");
  const path = (file: string): string => join(dir, file);

  return {
    dir,
    caCert: path("ca.crt"),
    serverCert: path("server.crt"),
    serverKey: path("server.key"),
    otherCert: path("other.crt"),
    otherKey: path("other.key"),
    clientCert: path("client.crt"),
    clientKey: path("client.key"),
    strangerCaCert: path("stranger-ca.crt"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { waitFor } from "./wait.ts";
import { trackChild } from "./child-processes.ts";

/** PEM files for a cluster whose client URLs use TLS and require client certificates. */
export interface EtcdTlsFiles {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

/**
 * Real etcd members (Debian's `etcd-server`) for tests, on loopback only.
 *
 * Members of one cluster must know each other's peer URLs before any of them starts, so
 * a kernel-chosen port cannot be used. Each member gets its own random address in
 * 127.0.0.0/8 with the standard ports 2379 (clients) and 2380 (peers) instead. A start
 * that fails because an address is taken is retried on new addresses.
 */
export class EtcdMember {
  process: Subprocess<"ignore", "pipe", "pipe"> | undefined;
  log = "";

  constructor(
    readonly name: string,
    readonly ip: string,
    readonly dataDir: string,
    private readonly initialCluster: string,
    /** Shared by every member of one cluster, so that members of other test clusters cannot join it. */
    private readonly clusterToken: string,
    /** With TLS, client URLs are https and clients must present a certificate of the test CA. */
    readonly tls?: EtcdTlsFiles,
  ) {}

  /** Client address, `IP:2379`, as etcdctl and tinylb targets write it. */
  get clientAddress(): string {
    return `${this.ip}:2379`;
  }

  get clientUrl(): string {
    return `${this.tls === undefined ? "http" : "https"}://${this.clientAddress}`;
  }

  get peerUrl(): string {
    return `http://${this.ip}:2380`;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Starts the member; with an existing data dir it rejoins with its saved state. */
  start(): void {
    if (this.running) {
      throw new Error(`etcd member ${this.name} is already running`);
    }
    this.log = "";
    this.process = trackChild(Bun.spawn(
      [
        "etcd",
        "--name", this.name,
        "--data-dir", this.dataDir,
        "--listen-client-urls", this.clientUrl,
        "--advertise-client-urls", this.clientUrl,
        "--listen-peer-urls", this.peerUrl,
        "--initial-advertise-peer-urls", this.peerUrl,
        "--initial-cluster", this.initialCluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", this.clusterToken,
        "--logger", "zap",
        "--log-outputs", "stderr",
        ...(this.tls === undefined
          ? []
          : ["--cert-file", this.tls.serverCertFile, "--key-file", this.tls.serverKeyFile, "--trusted-ca-file", this.tls.caFile, "--client-cert-auth"]),
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    ));
    void this.#collect(this.process.stdout);
    void this.#collect(this.process.stderr);
  }

  /** Waits until the member's `/health` returns `true`, or throws with its log. */
  async waitUntilHealthy(timeoutMs = 30_000): Promise<void> {
    try {
      await waitFor(`etcd member ${this.name} to be healthy`, async () => {
        if (!this.running) {
          throw new Error(`etcd member ${this.name} exited with ${this.process?.exitCode ?? this.process?.signalCode}`);
        }

        return await this.#healthy();
      }, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}; etcd log tail:\n${this.log.slice(-3000)}`);
    }
  }

  /** Stops the member with SIGTERM (SIGKILL after 10 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.process;
    if (child === undefined || !this.running) {
      return;
    }
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await child.exited;
    clearTimeout(timer);
  }

  async #healthy(): Promise<boolean> {
    try {
      const tls = this.tls === undefined ? undefined : { ca: Bun.file(this.tls.caFile), cert: Bun.file(this.tls.clientCertFile), key: Bun.file(this.tls.clientKeyFile) };
      const response = await fetch(`${this.clientUrl}/health`, { proxy: false, tls, signal: AbortSignal.timeout(2000) });
      const body = (await response.json()) as { health?: string };

      return body.health === "true";
    } catch {
      return false;
    }
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.log += decoder.decode(chunk, { stream: true });
      if (this.log.length > 200_000) {
        this.log = this.log.slice(-100_000);
      }
    }
  }
}

/** A cluster of etcd members in a temporary directory; `stop` ends them and removes it. */
export class EtcdCluster {
  private constructor(
    readonly members: EtcdMember[],
    readonly dir: string,
  ) {}

  /** Client URLs of every member, comma-separated, for `--endpoints`. */
  get endpoints(): string {
    return this.members.map((member) => member.clientUrl).join(",");
  }

  /** Starts `size` members, with TLS on the client URLs when `tls` is set, and waits until each one is healthy. */
  static async start(size: number, options: { tls?: boolean } = {}): Promise<EtcdCluster> {
    for (let attempt = 1; ; attempt++) {
      const cluster = await EtcdCluster.#create(size, options.tls === true);
      try {
        for (const member of cluster.members) {
          member.start();
        }
        await Promise.all(cluster.members.map((member) => member.waitUntilHealthy()));

        return cluster;
      } catch (error) {
        const addressTaken = cluster.members.some((member) => member.log.includes("address already in use"));
        await cluster.stop();
        if (!addressTaken || attempt >= 3) {
          throw error;
        }
      }
    }
  }

  static async #create(size: number, withTls: boolean): Promise<EtcdCluster> {
    const dir = mkdtempSync(join(tmpdir(), "tinylb-etcd-"));
    const ips = randomLoopbackIps(size);
    const tls = withTls ? await makeTlsFiles(dir, ips) : undefined;
    const names = ips.map((_, index) => `member-${index + 1}`);
    const initialCluster = names.map((name, index) => `${name}=http://${ips[index]}:2380`).join(",");
    const token = `tinylb-test-${basename(dir)}`;
    const members = names.map((name, index) => new EtcdMember(name, ips[index]!, join(dir, name), initialCluster, token, tls));

    return new EtcdCluster(members, dir);
  }

  /** Stops every member and removes the data directories. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((member) => member.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `etcdctl` (API v3) against `endpoints` and returns its stdout, or throws with its stderr. */
export async function etcdctl(endpoints: string, args: string[], timeoutMs = 15_000): Promise<string> {
  const child = trackChild(Bun.spawn(["etcdctl", "--endpoints", endpoints, "--dial-timeout", "3s", "--command-timeout", "5s", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ETCDCTL_API: "3" },
  }));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`etcdctl ${args.join(" ")} failed with exit code ${code}: ${stderr.trim()}`);
  }

  return stdout;
}

/** Makes a CA, a server certificate for `ips` and a client certificate with openssl, in `dir`. */
async function makeTlsFiles(dir: string, ips: string[]): Promise<EtcdTlsFiles> {
  const run = async (args: string[]): Promise<void> => {
    const child = Bun.spawn(["openssl", ...args], { cwd: dir, stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
    if (code !== 0) {
      throw new Error(`openssl ${args[0]} failed with exit code ${code}: ${stderr}`);
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const sign = ["-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "1"];

  await run(["req", "-x509", ...ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=etcd-test-ca"]);
  await run(["req", ...ec, "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=etcd"]);
  await Bun.write(join(dir, "server.ext"), `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await run(["x509", "-req", "-in", "server.csr", ...sign, "-out", "server.pem", "-extfile", "server.ext"]);
  await run(["req", ...ec, "-keyout", "client-key.pem", "-out", "client.csr", "-subj", "/CN=tinylb"]);
  await Bun.write(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  await run(["x509", "-req", "-in", "client.csr", ...sign, "-out", "client.pem", "-extfile", "client.ext"]);

  return {
    caFile: join(dir, "ca.pem"),
    serverCertFile: join(dir, "server.pem"),
    serverKeyFile: join(dir, "server-key.pem"),
    clientCertFile: join(dir, "client.pem"),
    clientKeyFile: join(dir, "client-key.pem"),
  };
}

/** Distinct random addresses in 127.100.0.0 to 127.199.255.255, away from 127.0.0.1. */
function randomLoopbackIps(count: number): string[] {
  const base = [100 + Math.floor(Math.random() * 100), Math.floor(Math.random() * 256)];
  const hosts = new Set<number>();
  while (hosts.size < count) {
    hosts.add(1 + Math.floor(Math.random() * 254));
  }

  return [...hosts].map((host) => `127.${base[0]}.${base[1]}.${host}`);
}

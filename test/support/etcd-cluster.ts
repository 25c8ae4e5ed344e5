import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { waitFor } from "./wait.ts";

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
  ) {}

  /** Client address, `IP:2379`, as etcdctl and tinylb targets write it. */
  get clientAddress(): string {
    return `${this.ip}:2379`;
  }

  get clientUrl(): string {
    return `http://${this.clientAddress}`;
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
    this.process = Bun.spawn(
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
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
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
      const response = await fetch(`${this.clientUrl}/health`, { proxy: false, signal: AbortSignal.timeout(2000) });
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

  /** Starts `size` members and waits until each one is healthy. */
  static async start(size: number): Promise<EtcdCluster> {
    for (let attempt = 1; ; attempt++) {
      const cluster = EtcdCluster.#create(size);
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

  static #create(size: number): EtcdCluster {
    const dir = mkdtempSync(join(tmpdir(), "tinylb-etcd-"));
    const ips = randomLoopbackIps(size);
    const names = ips.map((_, index) => `member-${index + 1}`);
    const initialCluster = names.map((name, index) => `${name}=http://${ips[index]}:2380`).join(",");
    const token = `tinylb-test-${basename(dir)}`;
    const members = names.map((name, index) => new EtcdMember(name, ips[index]!, join(dir, name), initialCluster, token));

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
  const child = Bun.spawn(["etcdctl", "--endpoints", endpoints, "--dial-timeout", "3s", "--command-timeout", "5s", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ETCDCTL_API: "3" },
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`etcdctl ${args.join(" ")} failed with exit code ${code}: ${stderr.trim()}`);
  }

  return stdout;
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

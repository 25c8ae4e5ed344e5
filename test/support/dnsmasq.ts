import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./wait.ts";
import { trackChild } from "./child-processes.ts";

/** Path of Debian's dnsmasq binary (package dnsmasq-base). */
export const DNSMASQ = "/usr/sbin/dnsmasq";

/** Returns true when dnsmasq is installed, so DNS tests can report why they are skipped. */
export function dnsmasqInstalled(): boolean {
  return Bun.which("dnsmasq", { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }) !== null;
}

/**
 * A real dnsmasq on 127.0.0.1 that answers only from a hosts file the test writes, for DNS
 * tests. It never forwards a query: there is no upstream server (`--no-resolv`, no
 * `--server`), and names under `.test` are local-only, so unknown names get NXDOMAIN.
 *
 * dnsmasq cannot pick its own port, so `start` tries random high ports until one binds.
 */
export class Dnsmasq {
  readonly port: number;
  readonly dir: string;
  readonly #process: Subprocess<"ignore", "pipe", "pipe">;
  #log = "";

  private constructor(port: number, dir: string, process: Subprocess<"ignore", "pipe", "pipe">) {
    this.port = port;
    this.dir = dir;
    this.#process = process;
    void this.#collect(process.stdout);
    void this.#collect(process.stderr);
  }

  /** `ip:port` for a resolver setting. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  get hostsPath(): string {
    return join(this.dir, "hosts");
  }

  /**
   * Starts dnsmasq with `hosts` lines (`ip name`), optional SRV records (`name,target,port`)
   * and further dnsmasq options (`extraArgs`), which must not add an upstream server.
   */
  static async start(hosts: string[], srvRecords: string[] = [], extraArgs: string[] = []): Promise<Dnsmasq> {
    const dir = mkdtempSync(join(tmpdir(), "tinylb-dnsmasq-"));
    writeFileSync(join(dir, "hosts"), hosts.join("\n") + "\n");
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = 20_000 + Math.floor(Math.random() * 40_000);
      const child = trackChild(Bun.spawn(
        [
          DNSMASQ,
          "--keep-in-foreground",
          "--conf-file=/dev/null",
          "--no-resolv",
          "--no-hosts",
          "--no-poll",
          "--local=/test/",
          "--domain-needed",
          "--bogus-priv",
          "--listen-address=127.0.0.1",
          "--bind-interfaces",
          `--port=${port}`,
          `--addn-hosts=${join(dir, "hosts")}`,
          "--local-ttl=0",
          "--cache-size=0",
          "--log-facility=-",
          "--user=root",
          "--pid-file=",
          ...srvRecords.map((record) => `--srv-host=${record}`),
          ...extraArgs,
        ],
        { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      ));
      const server = new Dnsmasq(port, dir, child);
      await waitFor("dnsmasq to start or exit", () => server.#log.includes("names") || child.exitCode !== null, 10_000);
      if (child.exitCode === null) {
        return server;
      }
      if (!server.#log.includes("Address already in use")) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`dnsmasq failed to start:\n${server.#log}`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error("dnsmasq found no free port in 20 attempts");
  }

  /** Rewrites the hosts file and waits until dnsmasq has read it again (SIGHUP). */
  async setHosts(hosts: string[]): Promise<void> {
    writeFileSync(this.hostsPath, hosts.length === 0 ? "" : hosts.join("\n") + "\n");
    const reads = this.#reads();
    this.#process.kill("SIGHUP");
    await waitFor("dnsmasq to re-read its hosts file", () => this.#reads() > reads);
  }

  /** Stops dnsmasq and removes its folder. */
  async stop(): Promise<void> {
    if (this.#process.exitCode === null) {
      this.#process.kill("SIGTERM");
      await this.#process.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  #reads(): number {
    return this.#log.split(`read ${this.hostsPath}`).length - 1;
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.#log += decoder.decode(chunk, { stream: true });
    }
  }
}

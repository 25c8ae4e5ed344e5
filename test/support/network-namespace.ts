import type { Subprocess } from "bun";
import { trackChild } from "./child-processes.ts";

/** Runs a command and returns whether it succeeded, with its stdout and stderr joined. */
export function run(command: string[]): { ok: boolean; output: string } {
  const result = Bun.spawnSync(command, { stdout: "pipe", stderr: "pipe" });

  return { ok: result.success, output: `${result.stdout.toString()}${result.stderr.toString()}`.trim() };
}

/**
 * A network namespace of the test with a veth link to this one: this side is `SUBNET.1/30`
 * and the namespace's side `SUBNET.2/30`, where `SUBNET` is `10.254.N` or `10.253.N`. Packets
 * to `address` stay on this machine. Creating one needs root (`ip netns add`), and `drop`
 * needs iptables in the namespace.
 */
export class NetworkNamespace {
  readonly name: string;
  /** The address of the namespace's end of the link. */
  readonly address: string;
  readonly #hostLink: string;
  readonly #namespaceLink: string;
  readonly #subnet: string;

  /**
   * Names a namespace from `tag` (one letter, so link names stay under 16 characters) and the
   * pid, so that two test files get different names, links and subnets. `second` is 254 or 253.
   */
  constructor(tag: string, second: 253 | 254 = 254) {
    this.name = `tinylb-${tag}-${process.pid}`;
    this.#hostLink = `tlb${tag}h${process.pid % 100_000}`;
    this.#namespaceLink = `tlb${tag}n${process.pid % 100_000}`;
    this.#subnet = `10.${second}.${process.pid % 250}`;
    this.address = `${this.#subnet}.2`;
  }

  /** Creates the namespace and its veth link; returns why it cannot, or undefined on success. */
  create(): string | undefined {
    if (!run(["iptables", "--version"]).ok) {
      return "iptables is not installed";
    }
    const steps = [
      ["ip", "netns", "add", this.name],
      ["ip", "link", "add", this.#hostLink, "type", "veth", "peer", "name", this.#namespaceLink],
      ["ip", "link", "set", this.#namespaceLink, "netns", this.name],
      ["ip", "addr", "add", `${this.#subnet}.1/30`, "dev", this.#hostLink],
      ["ip", "link", "set", this.#hostLink, "up"],
      ["ip", "netns", "exec", this.name, "ip", "addr", "add", `${this.address}/30`, "dev", this.#namespaceLink],
      ["ip", "netns", "exec", this.name, "ip", "link", "set", this.#namespaceLink, "up"],
    ];
    for (const step of steps) {
      const result = run(step);
      if (!result.ok) {
        this.delete();

        return `"${step.join(" ")}" failed: ${result.output}`;
      }
    }

    return undefined;
  }

  /**
   * Creates and deletes the namespace once, to learn whether this machine allows it. Returns
   * why not, after logging that `testName` is skipped, or undefined when it does.
   */
  checkAvailable(testName: string): string | undefined {
    const unavailable = this.create();
    if (unavailable !== undefined) {
      console.log(`skipping the ${testName} test: this machine cannot create a network namespace (${unavailable})`);
    } else {
      this.delete();
    }

    return unavailable;
  }

  /**
   * Runs `script` with the Bun of the tests inside the namespace, with `args` as its
   * arguments, and waits until it prints its first output, which is expected to contain `ready`.
   *
   * @throws {Error} when the first output does not contain `ready`.
   */
  async startBun(script: string, args: string[], ready: string): Promise<Subprocess<"ignore", "pipe", "inherit">> {
    const child = trackChild(Bun.spawn(this.command([process.execPath, "-e", script, ...args]), { stdin: "ignore", stdout: "pipe", stderr: "inherit" }));
    const reader = child.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    reader.releaseLock();
    if (!first.includes(ready)) {
      child.kill();
      await child.exited;
      throw new Error(`the script in namespace ${this.name} printed ${JSON.stringify(first)}, expected "${ready}"`);
    }

    return child;
  }

  /** Returns the command that runs `command` inside the namespace. */
  command(command: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...command];
  }

  /** Drops every packet in and out of the namespace, so its hosts neither respond nor reset; returns iptables' output, "" on success. */
  drop(): string {
    return ["INPUT", "OUTPUT"].map((chain) => run(this.command(["iptables", "-A", chain, "-j", "DROP"])).output).join("");
  }

  /** Removes the rules of `drop`; returns iptables' output, "" on success. */
  lift(): string {
    return ["INPUT", "OUTPUT"].map((chain) => run(this.command(["iptables", "-D", chain, "-j", "DROP"])).output).join("");
  }

  delete(): void {
    run(["ip", "netns", "del", this.name]);
    // Deleting the namespace removes both ends of the veth pair; this covers a failed setup.
    run(["ip", "link", "del", this.#hostLink]);
  }
}

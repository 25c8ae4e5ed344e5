import type { Socket, Subprocess, TCPSocketListener } from "bun";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { BINARY } from "./tinylb-process.ts";
import { waitFor } from "./wait.ts";
import { trackChild } from "./child-processes.ts";

/** Peers and process probes for the fault suite: plain echo backends, hashed transfers, /proc readers. */

/** One socket of an `EchoBackend`, with what it read so far and how it closed. */
export interface EchoPeer {
  socket: Socket<undefined>;
  /** The first bytes read, as latin1, so a test can tag a peer by what the client sent first. */
  head: string;
  bytes: number;
  /** True once a FIN arrived; a socket that closes without one was reset or aborted. */
  ended: boolean;
  closedAt?: number;
  closeError?: Error;
}

/**
 * First bytes that make an `EchoBackend` peer read and discard instead of echoing. Bun 1.4.4
 * reports a reset that arrives while the application is writing as an end of stream rather
 * than ECONNRESET, so tests that check for a reset use a peer that only reads.
 */
export const DISCARD_MARKER = "DISCARD ";

/**
 * A TCP backend on 127.0.0.1 that echoes every byte and sends FIN after the peer's FIN. It writes no
 * greeting, so a client can hash the echo against what it sent. A client whose first bytes
 * are `DISCARD_MARKER` gets nothing back.
 *
 * It queues what the client does not read instead of pausing the socket, because a paused Bun
 * 1.4.4 socket does not report a reset until it is resumed. Memory grows with unread bytes,
 * which the bounded transfers of the tests keep small.
 */
export class EchoBackend {
  readonly peers: EchoPeer[] = [];
  readonly listener: TCPSocketListener<undefined>;

  /** @param greeting a line written to every client on accept, before the echo. */
  constructor(greeting?: string) {
    const byId = new Map<Socket<undefined>, EchoPeer>();
    const pending = new Map<Socket<undefined>, Uint8Array[]>();
    const flush = (socket: Socket<undefined>): void => {
      const queue = pending.get(socket) ?? [];
      while (queue.length > 0) {
        const head = queue[0]!;
        const written = socket.write(head);
        if (written < head.byteLength) {
          queue[0] = head.subarray(Math.max(0, written));

          return;
        }
        queue.shift();
      }
      // The FIN is passed on only after the last queued byte.
      if (byId.get(socket)?.ended) {
        socket.shutdown();
      }
    };
    this.listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open: (socket) => {
          const peer: EchoPeer = { socket, head: "", bytes: 0, ended: false };
          byId.set(socket, peer);
          pending.set(socket, []);
          this.peers.push(peer);
          if (greeting !== undefined) {
            socket.write(`${greeting}\n`);
          }
        },
        data: (socket, chunk) => {
          const peer = byId.get(socket)!;
          if (peer.head.length < 64) {
            peer.head += chunk.subarray(0, 64).toString("latin1");
          }
          peer.bytes += chunk.byteLength;
          if (!peer.head.startsWith(DISCARD_MARKER)) {
            pending.get(socket)!.push(new Uint8Array(chunk));
            flush(socket);
          }
        },
        drain: (socket) => flush(socket),
        end: (socket) => {
          byId.get(socket)!.ended = true;
          flush(socket);
        },
        close: (socket, error) => {
          const peer = byId.get(socket)!;
          peer.closedAt = performance.now();
          peer.closeError = error;
          pending.delete(socket);
        },
      },
    });
  }

  get target(): string {
    return `127.0.0.1:${this.listener.port}`;
  }

  /** Peers still open. */
  get openCount(): number {
    return this.peers.filter((peer) => peer.closedAt === undefined).length;
  }

  stop(): void {
    this.listener.stop(true);
  }
}

/** Connects a client to 127.0.0.1:`port` that collects what it receives in `data.received`; throws when the connect fails. */
export function receivingClient(port: number): Promise<Socket<{ received: string }>> {
  return Bun.connect({
    hostname: "127.0.0.1",
    port,
    data: { received: "" },
    socket: {
      data: (own, chunk) => {
        own.data.received += chunk.toString("latin1");
      },
      error() {},
    },
  });
}

/** Connects a client and returns it once its line is echoed, or undefined when it is refused or not served within a second. */
export async function echoingClient(port: number, line: string): Promise<Socket<{ received: string }> | undefined> {
  let socket: Socket<{ received: string }>;
  try {
    socket = await receivingClient(port);
  } catch {
    return undefined;
  }

  return (await echoes(socket, line)) ? socket : (socket.terminate(), undefined);
}

/** Writes `line` and returns true once it is echoed within a second. */
export async function echoes(socket: Socket<{ received: string }>, line: string): Promise<boolean> {
  socket.write(line);
  try {
    await waitFor(`echo of ${line.trim()}`, () => socket.data.received.includes(line), 1000);

    return true;
  } catch {
    return false;
  }
}

/** The outcome of one `transfer`. */
export interface TransferResult {
  sentHash: string;
  receivedHash: string;
  sent: number;
  received: number;
  /** True when the socket closed cleanly, by FIN rather than by a reset or an error. */
  ended: boolean;
  closeError?: Error;
  /** True when the transfer was cut because it did not finish within its timeout. */
  timedOut: boolean;
  /** The first line of the reply, when `greeted` was set. */
  greeting: string;
  /** True when the echo received is a prefix of what was sent (or all of it). */
  prefixIntact: boolean;
}

/**
 * Sends `size` random bytes through the balancer at `port`, honouring backpressure, then
 * half-closes and collects the echo. With `greeted`, the reply's first line (a backend's
 * greeting) is left out of the hash. Resolves once the socket closes or `timeoutMs` passes.
 */
export async function transfer(port: number, size: number, options: { prefix?: string; greeted?: boolean; timeoutMs?: number } = {}): Promise<TransferResult> {
  const prefix = Buffer.from(options.prefix ?? "");
  const payload = Buffer.concat([prefix, randomBytes(size)]);
  const received: Buffer[] = [];
  let receivedBytes = 0;
  let offset = 0;
  let ended = false;
  let closeError: Error | undefined;
  let done!: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));

  const pump = (socket: Socket<undefined>): void => {
    while (offset < payload.byteLength) {
      const written = socket.write(payload.subarray(offset, offset + 64 * 1024));
      if (written <= 0) {
        return;
      }
      offset += written;
    }
    socket.shutdown();
  };
  const connecting = Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      open: (opened) => pump(opened),
      drain: (drained) => pump(drained),
      data: (_socket, chunk) => {
        received.push(Buffer.from(chunk));
        receivedBytes += chunk.byteLength;
      },
      end: (socket) => {
        ended = true;
        socket.end();
      },
      close: (_socket, error) => {
        // Bun 1.4.4 skips the end handler when the peer's FIN arrives after our own shutdown.
        ended ||= error === undefined;
        closeError = error;
        done();
      },
    },
  });
  let socket: Socket<undefined> | undefined;
  try {
    socket = await connecting;
  } catch (error) {
    // A reset can arrive before Bun reports the connect as open.
    closeError = error as Error;
    done();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket?.terminate();
  }, options.timeoutMs ?? 60_000);
  await closed;
  clearTimeout(timer);

  let reply = Buffer.concat(received);
  let greeting = "";
  if (options.greeted === true) {
    const newline = reply.indexOf(10);
    greeting = newline < 0 ? reply.toString("latin1") : reply.subarray(0, newline).toString("latin1");
    reply = newline < 0 ? Buffer.alloc(0) : reply.subarray(newline + 1);
  }

  return {
    greeting,
    prefixIntact: reply.equals(payload.subarray(0, reply.byteLength)),
    sentHash: sha256(payload),
    receivedHash: sha256(reply),
    sent: payload.byteLength,
    received: receivedBytes,
    ended: ended && !timedOut,
    timedOut,
    closeError,
  };
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Open file descriptors of a process, from `/proc/PID/fd`. */
export function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** CPU time of a process in clock ticks (user plus system), from `/proc/PID/stat`. */
export function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");

  return Number(fields[11]) + Number(fields[12]);
}

/** Resident set size of a process in bytes, from `/proc/PID/status`. */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));

  return Number(match?.[1] ?? 0) * 1024;
}

/** TCP states, as /proc/net/tcp names them, keyed by hexadecimal code. */
const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

/**
 * States of the TCP sockets a process has open, read by matching the socket inodes of
 * `/proc/PID/fd` against `/proc/net/tcp` and `/proc/net/tcp6` (the process's network namespace).
 */
export function tcpSocketStates(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match !== null) {
        inodes.add(match[1]!);
      }
    } catch {
      // The descriptor closed between readdir and readlink.
    }
  }

  const states: string[] = [];
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length > 9 && inodes.has(columns[9]!)) {
        states.push(TCP_STATES[columns[3]!] ?? columns[3]!);
      }
    }
  }

  return states;
}

/**
 * A `dist/tinylb` child started through `bash -c 'ulimit -n N; exec ...'` when a descriptor
 * limit is given, with its stderr collected. The admin API is off unless `args` set `--admin`.
 */
export class FaultProcess {
  readonly process: Subprocess<"ignore", "ignore", "pipe">;
  stderr = "";

  constructor(args: string[], options: { descriptorLimit?: number } = {}) {
    // Without --admin, tinylb serves its admin API on a fixed Unix socket that parallel tests would share.
    if (!args.includes("--admin")) {
      args = [...args, "--admin", "off"];
    }
    const command =
      options.descriptorLimit === undefined
        ? [BINARY, ...args]
        : ["bash", "-c", `ulimit -n ${options.descriptorLimit} && exec "$0" "$@"`, BINARY, ...args];
    const child = trackChild(Bun.spawn(command, { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } }));
    this.process = child;
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.stderr += decoder.decode(chunk, { stream: true });
      }
    })();
  }

  get pid(): number {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /**
   * Waits for the `tinylb started` line and returns the port of the first `listening` line.
   * tinylb logs "listening" before it takes the listen lock of the bound port, starts its
   * relay workers and binds the admin API, so only the later line marks the descriptors a
   * test may count as its baseline.
   */
  async port(): Promise<number> {
    const pattern = /listening .*listener=[^\s]*:(\d+)/;
    await waitFor(`tinylb started line; stderr so far:\n${this.stderr}`, () => this.stderr.includes("tinylb started") || !this.running, 10_000);
    const match = pattern.exec(this.stderr);
    if (match === null) {
      throw new Error(`tinylb exited before listening; stderr:\n${this.stderr}`);
    }

    return Number(match[1]);
  }

  /** Counts the stderr lines that contain `text`. */
  countLines(text: string): number {
    return this.stderr.split("\n").filter((line) => line.includes(text)).length;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.running) {
      this.process.kill("SIGKILL");
      await this.process.exited;
    }
  }
}

/** Perl program: listen on 127.0.0.1 with a backlog of 0, print the port, accept nothing, exit when stdin closes. */
const NEVER_ACCEPTING_LISTENER = `
use IO::Socket::INET;
$| = 1;
my $s = IO::Socket::INET->new(Listen => 0, LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp") or die "listen failed: $!";
print $s->sockport, "\\n";
my $ignored = <STDIN>;
`;

/**
 * A loopback target whose connects stay in flight: a listener that never accepts (perl, from
 * perl-base, because Bun's listeners always accept) with its accept queue filled first, so Linux
 * drops further SYNs until the dialer gives up.
 */
export class HangingTarget {
  readonly #child: Subprocess<"pipe", "pipe", "inherit">;
  readonly #fillers: Socket<undefined>[];
  readonly port: number;

  private constructor(child: Subprocess<"pipe", "pipe", "inherit">, port: number, fillers: Socket<undefined>[]) {
    this.#child = child;
    this.port = port;
    this.#fillers = fillers;
  }

  /** Starts the listener and connects until a connect stays pending for 300 ms (at most 64 connects). */
  static async start(): Promise<HangingTarget> {
    const child = trackChild(Bun.spawn(["perl", "-e", NEVER_ACCEPTING_LISTENER], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }));
    let text = "";
    for await (const chunk of child.stdout) {
      text += new TextDecoder().decode(chunk);
      if (text.includes("\n")) {
        break;
      }
    }
    const port = Number(text.trim());
    const fillers: Socket<undefined>[] = [];
    for (let i = 0; i < 64; i++) {
      const connecting = Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {}, connectError() {} } });
      const outcome = await Promise.race([connecting.catch(() => "failed" as const), Bun.sleep(300).then(() => "pending" as const)]);
      if (outcome === "pending") {
        connecting.then((socket) => socket.terminate(), () => {});

        return new HangingTarget(child, port, fillers);
      }
      if (outcome === "failed") {
        break;
      }
      fillers.push(outcome);
    }
    fillers.forEach((socket) => socket.terminate());
    child.kill();
    throw new Error(`could not fill the accept queue of 127.0.0.1:${port}`);
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.#fillers.forEach((socket) => socket.terminate());
    this.#child.kill();
    await this.#child.exited;
  }
}

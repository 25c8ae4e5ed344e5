import type { Socket, Subprocess } from "bun";
import { trackChild } from "./child-processes.ts";

/** Perl program: listen on 127.0.0.1 with a backlog of 0, print the port, never accept, exit when stdin closes. */
const LISTENER_SCRIPT = `
use IO::Socket::INET;
$| = 1;
my $s = IO::Socket::INET->new(Listen => 0, LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp") or die "listen failed: $!";
print $s->sockport, "\\n";
my $ignored = <STDIN>;
`;

/** Connects made at most while filling the backlog. */
const MAX_FILLERS = 64;

/**
 * A loopback port where a TCP connect never completes: a listener that never accepts,
 * whose accept queue is filled first, so Linux drops further SYNs and the client keeps
 * retrying. Bun's listeners always accept, so the listener is a small perl program
 * (perl-base is part of every Debian system).
 */
export class StalledListener {
  readonly port: number;
  readonly #child: Subprocess<"pipe", "pipe", "inherit">;
  readonly #fillers: Socket<undefined>[];

  private constructor(port: number, child: Subprocess<"pipe", "pipe", "inherit">, fillers: Socket<undefined>[]) {
    this.port = port;
    this.#child = child;
    this.#fillers = fillers;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts the listener and fills its queue until a connect stays pending for 300 ms. */
  static async start(): Promise<StalledListener> {
    const child = trackChild(Bun.spawn(["perl", "-e", LISTENER_SCRIPT], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }));
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) {
        throw new Error("the perl listener exited before printing its port");
      }
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const port = Number(text.trim());

    const fillers: Socket<undefined>[] = [];
    for (let i = 0; i < MAX_FILLERS; i++) {
      const connecting = Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {}, connectError() {} } });
      const outcome = await Promise.race([connecting.then((socket) => socket, () => "failed" as const), Bun.sleep(300).then(() => "pending" as const)]);
      if (outcome === "pending") {
        // Closed once the listener is gone and the kernel gives up on it.
        connecting.then((socket) => socket.terminate(), () => {});

        return new StalledListener(port, child, fillers);
      }
      if (outcome === "failed") {
        break;
      }
      fillers.push(outcome);
    }
    child.kill();
    fillers.forEach((socket) => socket.terminate());
    throw new Error(`could not fill the backlog of port ${port} with ${MAX_FILLERS} connects`);
  }

  /** Closes the filler sockets and ends the perl process. */
  async stop(): Promise<void> {
    this.#fillers.forEach((socket) => socket.terminate());
    this.#child.stdin.end();
    this.#child.kill();
    await this.#child.exited;
  }
}

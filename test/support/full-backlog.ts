import type { Socket, Subprocess } from "bun";
import { trackChild } from "./child-processes.ts";
import { readLines } from "./line-reader.ts";
import { waitFor } from "./wait.ts";

/**
 * Python program behind `FullBacklogListener`: listens with a backlog of 0 and accepts one
 * connection per `accept` line on stdin, then prints how each accepted connection ends.
 */
const PROGRAM = `
import socket, sys, threading
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(0)
print("port", server.getsockname()[1], flush=True)
held = []

def watch(connection):
    try:
        while connection.recv(65536):
            pass
        print("closed", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)

for line in sys.stdin:
    if line.strip() == "accept":
        connection, _ = server.accept()
        held.append(connection)
        print("accepted", flush=True)
        threading.Thread(target=watch, args=(connection,), daemon=True).start()
`;

/**
 * A loopback listener that never completes a connect: a real kernel listener (run by
 * python3) with a backlog of 0 that accepts only when `accept()` requests it. Once one connection
 * fills its accept queue, Linux drops further SYNs, so their connects hang, as with a
 * backend host that black-holes packets, while every packet stays on this machine.
 */
export class FullBacklogListener {
  readonly port: number;
  /** Lines the program printed: "accepted", then "closed" or "reset" per accepted connection. */
  readonly events: string[];
  readonly #child: Subprocess<"pipe", "pipe", "inherit">;
  readonly #filler: Socket<undefined>;

  private constructor(child: Subprocess<"pipe", "pipe", "inherit">, port: number, events: string[], filler: Socket<undefined>) {
    this.#child = child;
    this.port = port;
    this.events = events;
    this.#filler = filler;
  }

  /** Starts the listener and fills its accept queue with one idle connection. */
  static async start(): Promise<FullBacklogListener> {
    const child = trackChild(Bun.spawn(["python3", "-c", PROGRAM], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }));
    const events: string[] = [];
    void readLines(child.stdout, (line) => events.push(line));
    await waitFor("the full-backlog listener to report its port", () => events.some((line) => line.startsWith("port ")));
    const port = Number(events.shift()!.slice("port ".length));

    // This connection takes the only place in the accept queue; it is the first one accepted.
    const filler = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });

    return new FullBacklogListener(child, port, events, filler);
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Accepts the oldest queued connection, making room for one more. */
  accept(): void {
    this.#child.stdin.write("accept\n");
    this.#child.stdin.flush();
  }

  async stop(): Promise<void> {
    this.#filler.terminate();
    this.#child.kill();
    await this.#child.exited;
  }
}

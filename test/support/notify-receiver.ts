import type { Subprocess } from "bun";
import { trackChild } from "./child-processes.ts";
import { readLines } from "./line-reader.ts";
import { waitFor } from "./wait.ts";

/**
 * Python program behind `NotifyReceiver`: binds a Unix datagram socket at the path or `@name`
 * of argv[1] and prints each datagram as one JSON line, with the CLOCK_MONOTONIC time of its
 * arrival in microseconds.
 */
const PROGRAM = `
import json, socket, sys, time
address = sys.argv[1]
receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
receiver.bind("\\0" + address[1:] if address.startswith("@") else address)
print(json.dumps({"bound": True}), flush=True)
while True:
    data = receiver.recv(4096)
    print(json.dumps({"message": data.decode(), "monotonicUsec": time.monotonic_ns() // 1000}), flush=True)
`;

/** A datagram that reached the receiver. */
export interface Notification {
  message: string;
  /** CLOCK_MONOTONIC at its arrival, in microseconds. */
  monotonicUsec: number;
}

/**
 * A stand-in for systemd's notify socket (NOTIFY_SOCKET), run by python3: a real AF_UNIX
 * datagram socket that records every message. No systemd service manager can run in the test
 * environment, because it needs to be PID 1 or a user session with D-Bus.
 */
export class NotifyReceiver {
  /** Every datagram received so far, in order. */
  readonly notifications: Notification[];
  readonly #child: Subprocess<"ignore", "pipe", "inherit">;

  private constructor(child: Subprocess<"ignore", "pipe", "inherit">, notifications: Notification[]) {
    this.#child = child;
    this.notifications = notifications;
  }

  /** Starts the receiver on `address` (a path, or `@name` in the abstract namespace) and waits until it is bound. */
  static async start(address: string): Promise<NotifyReceiver> {
    const child = trackChild(Bun.spawn(["python3", "-c", PROGRAM, address], { stdin: "ignore", stdout: "pipe", stderr: "inherit" }));
    const notifications: Notification[] = [];
    let bound = false;
    void readLines(child.stdout, (line) => {
      const event = JSON.parse(line) as Notification & { bound?: boolean };
      if (event.bound === true) {
        bound = true;
      } else {
        notifications.push(event);
      }
    });
    await waitFor("the notify receiver to bind", () => bound);

    return new NotifyReceiver(child, notifications);
  }

  /** The messages received so far. */
  get messages(): string[] {
    return this.notifications.map((notification) => notification.message);
  }

  /** Waits until a message contains `text`, and returns the first such one. */
  async waitForMessage(text: string, timeoutMs = 10_000): Promise<Notification> {
    try {
      await waitFor(`a notification containing ${JSON.stringify(text)}`, () => this.messages.some((message) => message.includes(text)), timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}; received ${JSON.stringify(this.messages)}`);
    }

    return this.notifications.find((notification) => notification.message.includes(text))!;
  }

  async stop(): Promise<void> {
    this.#child.kill();
    await this.#child.exited;
  }
}

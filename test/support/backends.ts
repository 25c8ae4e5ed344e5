import type { Socket, TCPSocketListener } from "bun";

/**
 * A real TCP backend on 127.0.0.1 with a kernel-chosen port, for tests.
 *
 * `greet` backends write their id and a newline on accept, then echo what they read.
 * Every backend counts accepted and open sockets, so tests can check where clients went.
 */
export class TestBackend {
  readonly id: string;
  readonly listener: TCPSocketListener<undefined>;
  accepted = 0;
  readonly open = new Set<Socket<undefined>>();

  private constructor(id: string, listener: TCPSocketListener<undefined>) {
    this.id = id;
    this.listener = listener;
  }

  /** Target string of this backend, `127.0.0.1:PORT`. */
  get target(): string {
    return `127.0.0.1:${this.listener.port}`;
  }

  get port(): number {
    return this.listener.port;
  }

  /** Starts a backend that greets with its id and echoes. */
  static echo(id: string): TestBackend {
    const open = new Set<Socket<undefined>>();
    let backend: TestBackend;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(socket) {
          backend.accepted++;
          open.add(socket);
          socket.write(`${id}\n`);
        },
        data(socket, chunk) {
          socket.write(chunk);
        },
        end(socket) {
          socket.shutdown();
        },
        close(socket) {
          open.delete(socket);
        },
      },
    });
    backend = new TestBackend(id, listener);
    (backend as { open: Set<Socket<undefined>> }).open = open;

    return backend;
  }

  /** Stops accepting and closes every open socket. */
  stop(): void {
    this.listener.stop(true);
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}

/** A client socket that collects everything it reads, for tests. */
export class TestClient {
  received = "";
  bytes = 0;
  ended = false;
  closed = false;
  closeError: Error | undefined;
  socket!: Socket<undefined>;

  /** Connects to `port` on 127.0.0.1 (or a Unix path) and starts collecting. */
  static async connect(where: number | string): Promise<TestClient> {
    const client = new TestClient();
    const handlers = {
      data(_socket: Socket<undefined>, chunk: Buffer) {
        client.received += chunk.toString("latin1");
        client.bytes += chunk.byteLength;
      },
      end() {
        client.ended = true;
      },
      close(_socket: Socket<undefined>, error?: Error) {
        client.closed = true;
        client.closeError = error;
      },
    };
    client.socket =
      typeof where === "number"
        ? await Bun.connect({ hostname: "127.0.0.1", port: where, allowHalfOpen: true, socket: handlers })
        : await Bun.connect({ unix: where, allowHalfOpen: true, socket: handlers });

    return client;
  }

  /** The first line received, which a greeting backend sets to its id. */
  get firstLine(): string {
    const newline = this.received.indexOf("\n");

    return newline < 0 ? "" : this.received.slice(0, newline);
  }

  close(): void {
    this.socket.end();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

import type { Socket, SocketHandler } from "bun";
import type { Backend } from "./backend.ts";
import type { Connection } from "./connection.ts";
import { describeSocketError } from "./socket-errors.ts";

/** A failed dial, naming the backend id and target. Callers branch on it to fail over. */
export class DialError extends Error {
  override name = "DialError";
  readonly backend: Backend;

  constructor(backend: Backend, detail: string, options?: ErrorOptions) {
    super(`dial backend "${backend.id}" (${backend.target}) failed: ${detail}`, options);
    this.backend = backend;
  }
}

/** Socket settings applied to every backend socket once connected. */
export interface DialOptions {
  /** Milliseconds a connect may take before tinylb gives up on it. */
  connectTimeoutMs: number;
  /** Idle milliseconds before TCP keepalive probes start; 0 leaves keepalive off. */
  keepaliveMs: number;
  /** Returns false when the backend's target left the set while the dial was in flight. */
  isCurrent: (backend: Backend) => boolean;
}

/** The state of one dial, carried as the backend socket's `data`. */
class DialAttempt {
  state: "pending" | "attached" | "abandoned" = "pending";

  constructor(
    readonly connection: Connection,
    readonly backend: Backend,
    readonly options: DialOptions,
    readonly settle: (error?: DialError) => void,
  ) {}

  /** Handles the backend socket's open: attach it, or close it when neither the client nor the backend set still needs it. */
  opened(socket: Socket<DialAttempt>): void {
    if (this.state === "abandoned" || this.connection.closed) {
      this.state = "abandoned";
      socket.terminate();
      this.settle();

      return;
    }
    if (!this.options.isCurrent(this.backend)) {
      this.state = "abandoned";
      socket.terminate();
      this.settle(new DialError(this.backend, "its target left the backend set while the dial was in flight"));

      return;
    }

    this.state = "attached";
    configureSocket(socket, this.options.keepaliveMs);
    this.connection.attach(this.backend, socket as Socket<unknown>);
    this.settle();
  }
}

/** Handlers shared by every backend socket; each socket's `data` routes to its attempt. */
const BACKEND_HANDLERS: SocketHandler<DialAttempt> = {
  open(socket) {
    socket.data.opened(socket);
  },
  data(socket, chunk) {
    socket.data.connection.backendData(chunk);
  },
  drain(socket) {
    socket.data.connection.backendDrain();
  },
  end(socket) {
    if (socket.data.state === "attached") {
      socket.data.connection.backendEnd();
    }
  },
  close(socket, error) {
    if (socket.data.state === "attached") {
      socket.data.connection.socketClosed("backend", error);
    }
  },
  error() {
    // The close handler that follows decides what happens to the connection.
  },
  connectError() {
    // The rejected promise of Bun.connect carries the same error.
  },
};

/**
 * Dials a backend for a connection and attaches the socket to it.
 *
 * `Bun.connect` has no timeout of its own, so this one starts a timer. A connect that
 * completes after the timer fired, after the client left, or after the backend's
 * target left the set is closed at once.
 *
 * @throws {DialError} when the connect fails, times out, or its target leaves the set.
 */
export function dialBackend(connection: Connection, backend: Backend, options: DialOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (error?: DialError): void => {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (error === undefined) {
        resolve();
      } else {
        reject(error);
      }
    };
    const attempt = new DialAttempt(connection, backend, options, settle);

    // NOTE: Bun.connect cannot be cancelled, so an abandoned connect keeps its socket until
    // the kernel gives up (about 2 minutes with Linux's default tcp_syn_retries of 6) or it
    // completes, when `opened` closes it.
    const timer = setTimeout(() => {
      attempt.state = "abandoned";
      settle(new DialError(backend, `connect timed out after ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);

    const address = backend.address;
    const connecting =
      address.kind === "unix"
        ? Bun.connect({ unix: address.path, allowHalfOpen: true, data: attempt, socket: BACKEND_HANDLERS })
        : Bun.connect({ hostname: address.host, port: address.port, allowHalfOpen: true, data: attempt, socket: BACKEND_HANDLERS });
    connecting.catch((error: unknown) => {
      attempt.state = "abandoned";
      settle(new DialError(backend, describeSocketError(error), { cause: error }));
    });
  });
}

/** Turns on TCP keepalive (a no-op on Unix sockets); Nagle's algorithm is already off, see below. */
export function configureSocket(socket: Socket<unknown> | Socket<DialAttempt>, keepaliveMs: number): void {
  // Bun 1.4.4 already sets TCP_NODELAY on every TCP socket it accepts or connects (seen with
  // strace), so calling setNoDelay(true) here again would only cost a system call per socket.
  if (keepaliveMs > 0) {
    socket.setKeepAlive(true, keepaliveMs);
  }
}

import type { Socket, SocketHandler } from "bun";
import type { Backend } from "./backend.ts";
import type { ConnectDeadlines, TimedDial } from "./connect-deadlines.ts";
import type { Connection } from "./connection.ts";
import { DESCRIPTOR_SHORTAGE, type DescriptorShortage } from "./descriptor-shortage.ts";
import type { BackendSelector } from "./backend-selector.ts";
import type { FailoverPlan } from "./failover-plan.ts";
import type { RelaySocket } from "./flow.ts";
import { proxyHeaderOf } from "./proxy-header.ts";
import { proxyProtocolOf } from "./proxy-protocol.ts";
import { describeSocketError } from "./socket-errors.ts";

/** The reason given for a dial abandoned because its target left the backend set. */
const TARGET_LEFT = "its target left the backend set while the dial was in flight";

/** The reason given for a dial abandoned because its backend was disabled with its connections closed. */
export const BACKEND_DISABLED = "the backend was disabled while the dial was in flight";

/** The reason given for a dial abandoned because its backend turned unhealthy under `onUnhealthy: close`. */
export const BACKEND_UNHEALTHY = "the backend turned unhealthy while the dial was in flight";

/** A failed dial, naming the backend id and target. Callers branch on it to fail over. */
export class DialError extends Error {
  override name = "DialError";
  readonly backend: Backend;
  /** The reason the dial failed, without the backend id and target, for log lines that carry those as fields. */
  readonly detail: string;
  /**
   * True when tinylb gave the dial up itself: the backend's target left the set, the
   * backend was disabled with its connections closed or turned unhealthy under
   * `onUnhealthy: close`, or the process ran out of file descriptors. Such a dial is not
   * counted as a failure, because it does not reflect the backend's health.
   */
  readonly givenUp: boolean;

  constructor(backend: Backend, detail: string, options?: ErrorOptions & { givenUp?: boolean }) {
    super(`dial backend "${backend.id}" (${backend.target}) failed: ${detail}`, options);
    this.backend = backend;
    this.detail = detail;
    this.givenUp = options?.givenUp ?? false;
  }
}

/** Settings shared by every dial of one server; changes apply to dials started afterwards. */
export interface DialOptions {
  /** Milliseconds a connect may take before tinylb gives up on it. */
  connectTimeoutMs: number;
  /** Watches every dial's connect timeout. */
  deadlines: ConnectDeadlines<DialAttempt>;
  /** Returns false when the backend's target left the set while the dial was in flight. */
  isCurrent: (backend: Backend) => boolean;
  /** Called with every backend socket once it is attached to its connection. */
  attached: (socket: Socket<unknown>, connection: Connection) => void;
  /** Tells a connect that failed for lack of a file descriptor from one the backend refused. */
  descriptorShortage?: DescriptorShortage;
}

/** Receives the outcome of every dial. One object serves a whole server, so a dial allocates no callbacks. */
export interface DialObserver {
  /**
   * Receives the end of a dial, once per dial. There is no error when the backend socket is
   * attached, or when the client closed during the dial (then the socket is closed and
   * nothing is attached). The DialError gives the reason the connect failed, timed out, or
   * was dropped.
   */
  dialSettled(attempt: DialAttempt, error?: DialError): void;
}

/**
 * One dial of one backend for one connection, carried as the backend socket's `data`.
 *
 * `Bun.connect` has no timeout of its own, so the attempt has a deadline, which the server's
 * ConnectDeadlines watches. A connect that completes after the deadline passed, after the
 * client left, or after the backend's target left the set is closed at once.
 */
export class DialAttempt implements TimedDial {
  state: "pending" | "attached" | "abandoned" = "pending";
  readonly connection: Connection;
  readonly backend: Backend;
  /** The selector the client's first backend came from, which its failover keeps using. */
  readonly selector: BackendSelector;
  /**
   * The failover order this dial belongs to, which the observer reads when the dial fails. It
   * is null for a client's first dial, whose plan the observer builds only if that dial fails.
   */
  readonly plan: FailoverPlan | null;
  /** `performance.now()` milliseconds at which the connect started; set by `start`. */
  startedAt = 0;
  /** True when the health checker made this dial the trial of a backend whose back-off ended. */
  trial = false;
  /** `performance.now()` milliseconds at which the connect is given up; set by `start`. */
  deadline = Infinity;
  /** Seconds from `startedAt` to the connected socket; set when the socket opens, before it is attached. */
  connectSeconds = 0;
  /** Index in the list of ConnectDeadlines, or -1. Only ConnectDeadlines writes it. */
  deadlineSlot = -1;
  readonly #options: DialOptions;
  readonly #observer: DialObserver;
  #timeoutMs = 0;

  constructor(connection: Connection, backend: Backend, selector: BackendSelector, plan: FailoverPlan | null, options: DialOptions, observer: DialObserver) {
    this.connection = connection;
    this.backend = backend;
    this.selector = selector;
    this.plan = plan;
    this.#options = options;
    this.#observer = observer;
  }

  /** True until the dial succeeds, fails or times out. */
  get pending(): boolean {
    return this.state === "pending";
  }

  /** Starts the connect and watches its deadline; `now` is the current `performance.now()` time. */
  start(now: number): void {
    // NOTE: Bun.connect cannot be cancelled, so an abandoned connect keeps its socket until
    // the kernel gives up (about 2 minutes with Linux's default tcp_syn_retries of 6) or it
    // completes, when `opened` closes it.
    this.#timeoutMs = this.#options.connectTimeoutMs;
    this.startedAt = now;
    this.deadline = this.startedAt + this.#timeoutMs;
    this.#options.deadlines.add(this);
    // The promise Bun.connect returns is not used. With a connectError handler, Bun 1.4.4
    // reports every failed connect there, a failed name lookup too, and counts the rejection
    // as handled (checked with a refused port and, in a namespace without DNS, a host name).
    const address = this.backend.address;
    if (address.kind === "unix") {
      void Bun.connect({ unix: address.path, allowHalfOpen: true, data: this, socket: BACKEND_HANDLERS });
    } else {
      void Bun.connect({ hostname: address.host, port: address.port, allowHalfOpen: true, data: this, socket: BACKEND_HANDLERS });
    }
  }

  /** Handles the backend socket's open: attach it, or close it when neither the client nor the backend set still needs it. */
  opened(socket: Socket<DialAttempt>): void {
    if (this.state === "abandoned") {
      socket.terminate();

      return;
    }
    this.connectSeconds = (performance.now() - this.startedAt) / 1000;
    if (this.connection.closed) {
      socket.terminate();
      this.#settle();

      return;
    }
    if (!this.#options.isCurrent(this.backend)) {
      socket.terminate();
      this.#settle(new DialError(this.backend, TARGET_LEFT, { givenUp: true }));

      return;
    }

    this.state = "attached";
    this.connection.attach(this.backend, socket as Socket<unknown>, watchBackendDrain, this.#proxyHeader());
    this.#options.attached(socket as Socket<unknown>, this.connection);
    this.#settle();
  }

  /** Ends a pending dial with an error; later events of its socket are ignored. */
  failed(error: DialError): void {
    if (this.state === "pending") {
      this.#settle(error);
    }
  }

  /** Ends a pending dial whose connect failed with `error`; a failure for lack of a file descriptor is not the backend's. */
  connectFailed(error: Error): void {
    const backend = this.backend;
    if (this.#options.descriptorShortage?.explains(error, { backend: backend.id, target: backend.target }) === true) {
      this.failed(new DialError(backend, DESCRIPTOR_SHORTAGE, { cause: error, givenUp: true }));

      return;
    }

    this.failed(new DialError(backend, describeSocketError(error), { cause: error }));
  }

  /** Gives the connect up because the backend's target left the set; the client fails over at once. */
  targetRemoved(): void {
    this.giveUp(TARGET_LEFT);
  }

  /** Gives the connect up for `reason`, which does not count as a failure of the backend; the client fails over at once. */
  giveUp(reason: string): void {
    this.failed(new DialError(this.backend, reason, { givenUp: true }));
  }

  /** Gives the connect up once its deadline passed. */
  timedOut(): void {
    this.failed(new DialError(this.backend, `connect timed out after ${this.#timeoutMs} ms`));
  }

  /**
   * Returns the PROXY protocol header the backend receives, or undefined. The client's
   * addresses are read only here, because each is a system call.
   */
  #proxyHeader(): Uint8Array | undefined {
    const settings = this.connection.proxyProtocol;
    const version = settings === null ? undefined : proxyProtocolOf(settings, this.backend);

    return version === undefined ? undefined : proxyHeaderOf(version, this.connection.client);
  }

  #settle(error?: DialError): void {
    if (this.state === "pending") {
      this.state = "abandoned";
    }
    this.#options.deadlines.delete(this);
    this.#observer.dialSettled(this, error);
  }
}

/**
 * Handlers shared by every backend socket; each socket's `data` routes to its attempt.
 *
 * They have no `drain` handler until the socket first takes only part of a write
 * (`watchBackendDrain`). When a socket has one, Bun 1.4.4 calls it for the writable event
 * that follows a backend's FIN, and sets TCP_CORK off first. That costs one more
 * setsockopt(2) per short connection: perf counted 1.72 TCP_CORK calls per HTTP request
 * with a drain handler on every backend socket and 0.90 without.
 */
const BACKEND_HANDLERS: SocketHandler<DialAttempt> = {
  open(socket) {
    socket.data.opened(socket);
  },
  data(socket, chunk) {
    socket.data.connection.backendData(chunk);
  },
  // Each handler reads `data` once, because every read is a call into Bun's native code.
  end(socket) {
    const attempt = socket.data;
    if (attempt.state === "attached") {
      attempt.connection.backendEnd();
    }
  },
  close(socket, error) {
    const attempt = socket.data;
    if (attempt.state === "attached") {
      attempt.connection.socketClosed("backend", error);
    }
  },
  error() {
    // The close handler that follows decides what happens to the connection.
  },
  connectError(socket, error) {
    socket.data.connectFailed(error);
  },
};

/** The backend handlers with `drain`, for a socket that took only part of a write. */
const BACKEND_HANDLERS_WITH_DRAIN: SocketHandler<DialAttempt> = {
  ...BACKEND_HANDLERS,
  drain(socket) {
    socket.data.connection.backendDrain();
  },
};

/**
 * Installs the drain handler on a backend socket that took only part of a write. Bun keeps
 * a `Bun.connect` socket's handlers per socket, and the writable event that follows the
 * short write comes in a later event-loop turn, so the drain is not missed.
 */
function watchBackendDrain(socket: RelaySocket): void {
  (socket as Socket<DialAttempt>).reload({ socket: BACKEND_HANDLERS_WITH_DRAIN });
}

/** Turns on TCP keepalive (a no-op on Unix sockets); Nagle's algorithm is already off, see below. */
export function configureSocket(socket: Socket<unknown>, keepaliveMs: number): void {
  // Bun 1.4.4 already sets TCP_NODELAY on every TCP socket it accepts or connects (seen with
  // strace), so calling setNoDelay(true) here again would only cost a system call per socket.
  if (keepaliveMs > 0) {
    socket.setKeepAlive(true, keepaliveMs);
  }
}

import { socketLocalAddress } from "./accepting-listener.ts";
import { formatAddress } from "./address.ts";
import type { Backend } from "./backend.ts";
import type { PooledConnection } from "./connection-pool.ts";
import { Flow, type FlowOwner, type RelaySocket, type SinkBackedUpHandler } from "./flow.ts";
import type { ProxyProtocolSettings } from "./proxy-protocol.ts";
import type { BackendCounters } from "./traffic-stats.ts";

/** The way a connection ended, for logs and counters. */
export type CloseKind = "completed" | "reset" | "closed";

/** Called once when both sockets of a connection are done. */
export type ConnectionClosedHandler = (connection: Connection, kind: CloseKind, reason: string) => void;

/**
 * One client socket paired with one backend socket, relaying bytes both ways.
 *
 * A connection starts in the dialing state with only its client socket. Bytes the client
 * sends meanwhile are queued by the upload flow, which pauses the client until a backend
 * socket can take them.
 * `attach` adds the backend socket and starts both flows. It ends in one of three ways:
 * both sides sent FIN and every byte was written ("completed"); one side reset or
 * closed abruptly, so the other is reset too ("reset"); or tinylb closed it, for
 * example because its target left the backend set ("closed"). Once a backend is
 * attached, tinylb's own close resets both sides (see `close`).
 */
export class Connection implements PooledConnection, FlowOwner {
  readonly id: number;
  readonly client: RelaySocket;
  /** Bytes relayed both ways as the last idle sweep saw them, or -1 before the first; written by IdleSweeper only. */
  idleSweepBytes = -1;
  /** Clock time of the idle sweep that last saw `idleSweepBytes` change; written by IdleSweeper only. */
  idleSweepActiveAt = 0;
  /** Index in the pool's list of all connections, or -1. Only ConnectionPool writes it. */
  poolSlot = -1;
  /** Index in the pool's list of the target's connections, or -1. Only ConnectionPool writes it. */
  targetSlot = -1;
  /** Index in the list of dialing connections, or -1. Only ClientAcceptor writes it. */
  dialingSlot = -1;
  /** True once the keepalive batch has handled the backend socket, or when it needs no batch. Only DeferredKeepalive writes it. */
  backendKeepaliveDone = false;

  #backend: Backend | null = null;
  #backendSocket: RelaySocket | null = null;
  readonly #upload: Flow;
  #download: Flow | null = null;
  #closed = false;
  readonly #onClosed: ConnectionClosedHandler;
  #clientAddress: string | undefined;
  /** `performance.now()` milliseconds at the accept, for the connection duration histogram and the close line. */
  acceptedAt = 0;
  /** Name of the listener that accepted the client, set only while debug lines are on, for their `listener` field. */
  listener: string | undefined = undefined;
  /** PROXY protocol settings in force when the client was accepted, or null when no backend receives a header. */
  proxyProtocol: ProxyProtocolSettings | null = null;
  /**
   * Traffic counters of the backend id, set when the connection enters the pool, so that its
   * close needs no lookup. CounterRetention and StatsDeltas never drop the counters of an id
   * that an open connection uses.
   */
  counters: BackendCounters | null = null;

  constructor(id: number, client: RelaySocket, onClosed: ConnectionClosedHandler) {
    this.id = id;
    this.client = client;
    // The client is not paused here: in Bun 1.4.4 a pause and resume cost four epoll_ctl
    // calls, two setsockopt calls and two wake-ups (seen with strace). The upload flow
    // queues what arrives before a backend is attached and pauses the client then.
    this.#upload = new Flow(client, false, this);
    this.#onClosed = onClosed;
  }

  /**
   * Client address as `ip:port`, or "unix" for a Unix socket client. Read on first use and
   * kept: each of a Bun socket's remoteAddress and remotePort is a getpeername(2) call, and
   * most connections never need the address.
   */
  get clientAddress(): string {
    this.#clientAddress ??= this.client.remoteAddress ? formatAddress({ kind: "tcp", host: this.client.remoteAddress, port: this.client.remotePort }) : "unix";

    return this.#clientAddress;
  }

  /** The backend this connection is attached to; throws while dialing. */
  get backend(): Backend {
    if (this.#backend === null) {
      throw new Error(`invariant violated: connection ${this.id} has no backend yet`);
    }

    return this.#backend;
  }

  /** Local address of the backend socket as `ip:port` (`unix` for a Unix socket), or undefined while dialing. */
  get backendLocalAddress(): string | undefined {
    return this.#backendSocket === null ? undefined : socketLocalAddress(this.#backendSocket);
  }

  /** The backend socket when it is a TCP socket, or null while dialing or for a Unix socket. */
  get tcpBackendSocket(): RelaySocket | null {
    return this.#backend?.address.kind === "tcp" ? this.#backendSocket : null;
  }

  /** The attached backend's target, or "" while dialing. */
  get target(): string {
    return this.#backend?.target ?? "";
  }

  /** True until a backend socket is attached or the connection closes. */
  get dialing(): boolean {
    return this.#backendSocket === null && !this.#closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written to the backend. */
  get bytesToBackend(): number {
    return this.#upload.bytes;
  }

  /** Bytes written to the client. */
  get bytesToClient(): number {
    return this.#download?.bytes ?? 0;
  }

  /** Bytes read and not yet written, both directions. */
  get pendingBytes(): number {
    return this.#upload.pendingBytes + (this.#download?.pendingBytes ?? 0);
  }

  /**
   * Pairs the connected backend socket with the client and starts relaying both ways.
   *
   * @param onBackendBackedUp run once, when the backend socket first takes only part of a write.
   * @param header bytes the backend receives before any byte of the client, such as a PROXY
   *   protocol header.
   */
  attach(backend: Backend, socket: RelaySocket, onBackendBackedUp?: SinkBackedUpHandler, header?: Uint8Array): void {
    if (this.#closed || this.#backendSocket !== null) {
      throw new Error(`invariant violated: connection ${this.id} cannot attach backend "${backend.id}" twice or after close`);
    }

    this.#backend = backend;
    this.#backendSocket = socket;
    this.#download = new Flow(socket, false, this);
    this.#download.setSink(this.client);
    this.#upload.setSink(socket, onBackendBackedUp, header);
  }

  /** Handles bytes read from the client. */
  clientData(chunk: Uint8Array): void {
    this.#upload.forward(chunk);
  }

  /** Handles bytes read from the backend. */
  backendData(chunk: Uint8Array): void {
    this.#download?.forward(chunk);
  }

  /** Handles the client's socket becoming writable again; the flush may pass on the backend's FIN. */
  clientDrain(): void {
    this.#download?.flush();
    this.#closeIfFinished();
  }

  /** Handles the backend's socket becoming writable again; the flush may pass on the client's FIN. */
  backendDrain(): void {
    this.#upload.flush();
    this.#closeIfFinished();
  }

  /** Handles a FIN from the client, or a reset that a failed write to the client took (see `Flow.sinkFailed`). */
  clientEnd(): void {
    if (this.#download?.sinkFailed === true) {
      this.#resetBy("client");

      return;
    }
    // When the other direction is finished, #closeIfFinished ends the backend socket next.
    if (this.#download?.finished === true) {
      this.#upload.endBeforeSinkClose();
    } else {
      this.#upload.end();
    }
    this.#closeIfFinished();
  }

  /** Handles a FIN from the backend, or a reset that a failed write to the backend took. */
  backendEnd(): void {
    if (this.#upload.sinkFailed && !this.#unixBackendStoppedReading) {
      this.#resetBy("backend");

      return;
    }
    // When the other direction is finished, #closeIfFinished ends the client socket next.
    if (this.#upload.finished) {
      this.#download?.endBeforeSinkClose();
    } else {
      this.#download?.end();
    }
    this.#closeIfFinished();
  }

  /**
   * Handles a socket of this connection closing under us: a reset, an error, or the
   * peer going away. The other side is reset so that it learns at once.
   *
   * A close without an error on a socket whose write side tinylb already shut down is
   * the peer's FIN, not a failure. Bun 1.4.4 reports a FIN that arrives after our own
   * `shutdown()` as a close with no `end` event, so it is handled as an end here.
   *
   * NOTE: Bun 1.4.4 reports a reset that arrives after `shutdown()` the same way, with no
   * error, so in that half-closed state a peer's reset reaches the other side as a FIN.
   */
  socketClosed(side: "client" | "backend", error?: Error): void {
    if (this.#closed) {
      return;
    }
    const flowIntoSide = side === "client" ? this.#download : this.#upload;
    if (error === undefined && flowIntoSide?.finished === true && !flowIntoSide.sinkFailed) {
      if (side === "client") {
        this.clientEnd();
      } else {
        this.backendEnd();
      }

      return;
    }

    if (error === undefined && flowIntoSide?.sinkFailed === true && !(side === "backend" && this.#unixBackendStoppedReading)) {
      this.#resetBy(side);

      return;
    }
    // Bun 1.4.4 reports the end and the close of a Unix socket peer together. So the reply of a
    // peer that closed after it still flows to the other side, which gets the FIN after it, as
    // from a TCP peer. Nothing was lost unless bytes for the closed side were still queued. A
    // client that closes while its dial is in flight has nothing queued for it: its request
    // waits in the upload flow for the backend.
    const flowFromSide = side === "client" ? this.#upload : this.#download;
    if (error === undefined && flowFromSide?.sourceEnded === true && (flowIntoSide?.pendingBytes ?? 0) === 0) {
      return;
    }
    const cause = error === undefined ? "closed" : ((error as { code?: string }).code ?? error.message);
    this.#resetOther(side, `${side} ${cause}`);
  }

  /**
   * Handles a failed write of a flow: the peer of its sink reset or closed that socket. A Unix
   * backend's reply may still wait unread, so until its FIN has reached the client, the
   * backend's end or close decides what follows. After that, the client is reset, as a TCP
   * backend's reset would reset it.
   */
  sinkWriteFailed(flow: Flow): void {
    if (flow === this.#upload && this.#unixBackendStoppedReading && this.#download?.finished !== true) {
      return;
    }
    this.#resetBy(flow === this.#upload ? "backend" : "client");
  }

  /**
   * True when a write to a Unix backend failed: the backend closed or shut its read side before
   * it read every byte. Linux fails such a write (EPIPE) where a TCP peer would take the bytes
   * and send a reset back, and the backend's reply, such as an error line, may still be unread.
   * So the reply and the backend's FIN still reach the client. The client's bytes for the
   * backend are read and dropped meanwhile, because closing a socket with unread bytes would
   * reset it and discard the reply still queued for it.
   */
  get #unixBackendStoppedReading(): boolean {
    return this.#upload.sinkFailed && this.#backend?.address.kind === "unix";
  }

  /** Resets the other side of a `side` whose peer reset or closed it while tinylb was writing to it. */
  #resetBy(side: "client" | "backend"): void {
    if (!this.#closed) {
      this.#resetOther(side, `${side} gone while tinylb wrote to it`);
    }
  }

  #resetOther(side: "client" | "backend", reason: string): void {
    const other = side === "client" ? this.#backendSocket : this.client;
    // Finished before the other side is reset: terminate() runs that socket's close handler at
    // once, which must find the connection closed rather than report itself as the cause.
    this.#finish("reset", reason);
    other?.terminate();
  }

  /**
   * Closes the connection on tinylb's initiative, dropping queued bytes: when its target
   * left the backend set, at the end of the shutdown grace period, or when no backend
   * could be dialled.
   *
   * An attached connection is reset on both sides rather than ended with FIN. A FIN signals
   * to each peer that the stream ended cleanly, so a reply cut off midway could pass for a
   * complete one. Linux also sends a reset anyway when unread bytes sit in the receive
   * buffer, so FIN would be delivered only sometimes. A client still waiting for its dial
   * has received nothing yet, so it gets a plain FIN.
   */
  close(reason: string): void {
    if (this.#closed) {
      return;
    }

    this.#finish("closed", reason);
    if (this.#backendSocket === null) {
      this.client.end();

      return;
    }
    this.client.terminate();
    this.#backendSocket.terminate();
  }

  /** Resets both sockets, so each peer sees a reset rather than an end of stream. */
  reset(reason: string): void {
    if (this.#closed) {
      return;
    }

    this.#finish("reset", reason);
    this.client.terminate();
    this.#backendSocket?.terminate();
  }

  #closeIfFinished(): void {
    if (this.#closed || this.#download === null || !this.#download.finished) {
      return;
    }
    const backendStoppedReading = this.#unixBackendStoppedReading;
    if (!this.#upload.finished && !backendStoppedReading) {
      return;
    }

    this.#finish("completed", backendStoppedReading ? "the Unix backend closed before it read every byte" : "both sides finished");
    this.client.end();
    this.#backendSocket?.end();
  }

  #finish(kind: CloseKind, reason: string): void {
    this.#closed = true;
    this.#onClosed(this, kind, reason);
  }
}

import type { Socket, SocketHandler, TCPSocketListener, UnixSocketListener } from "bun";
import { waitFor } from "./wait.ts";

/**
 * One end of a relayed stream in a relay test: a real socket that hashes what it reads,
 * can read slowly, and sends a byte array while honouring `drain`.
 */
export class Peer {
  socket!: Socket<Peer>;
  readonly hasher = new Bun.CryptoHasher("sha256");
  /** Bytes read so far. */
  received = 0;
  /** Text read so far, kept only while `keepText` is set. */
  text = "";
  keepText = true;
  /** Set once a FIN was read. */
  ended = false;
  /** Bytes read before the FIN arrived. */
  receivedAtEnd = -1;
  closed = false;
  closeError: (Error & { code?: string }) | undefined;
  /** Milliseconds to stop reading after each chunk; 0 reads at full speed. */
  slowReadMs = 0;
  /** Size of the largest chunk one read delivered. */
  maxChunk = 0;

  #outgoing: Uint8Array | null = null;
  #offset = 0;
  #shutdownWhenSent = false;
  #shutDown = false;
  #sent: (() => void) | null = null;

  /** Socket handlers that route every event to the socket's Peer. */
  static readonly handlers: SocketHandler<Peer> = {
    open(socket) {
      socket.data.socket = socket;
    },
    data(socket, chunk) {
      socket.data.#read(chunk);
    },
    drain(socket) {
      socket.data.#pump();
    },
    end(socket) {
      socket.data.ended = true;
      socket.data.receivedAtEnd = socket.data.received;
    },
    close(socket, error) {
      const peer = socket.data;
      peer.closed = true;
      peer.closeError = error as Error & { code?: string };
      // Bun 1.4.4 reports a FIN that arrives after this side's own shutdown() as a
      // close without an error and without an end event. It reports a reset in that
      // state the same way, so a test cannot tell the two apart here.
      if (error === undefined && peer.#shutDown && !peer.ended) {
        peer.ended = true;
        peer.receivedAtEnd = peer.received;
      }
    },
    error() {
      // close follows with the same error.
    },
  };

  /** Connects a peer to 127.0.0.1:port, or to a Unix socket path, with half-open sockets allowed. */
  static async connect(where: number | string): Promise<Peer> {
    const peer = new Peer();
    peer.socket =
      typeof where === "number"
        ? await Bun.connect({ hostname: "127.0.0.1", port: where, allowHalfOpen: true, data: peer, socket: Peer.handlers })
        : await Bun.connect({ unix: where, allowHalfOpen: true, data: peer, socket: Peer.handlers });

    return peer;
  }

  /** Hex SHA-256 of everything read; call once, after the last byte. */
  digest(): string {
    return this.hasher.digest("hex");
  }

  /** Sends `bytes`, resolving once the kernel took the last one; `shutdown` then sends FIN. */
  send(bytes: Uint8Array, options: { shutdown?: boolean } = {}): Promise<void> {
    this.#outgoing = bytes;
    this.#offset = 0;
    this.#shutdownWhenSent = options.shutdown ?? false;
    const sent = new Promise<void>((resolve) => (this.#sent = resolve));
    this.#pump();

    return sent;
  }

  /** Sends FIN: shuts down the write side and keeps reading. */
  shutdown(): void {
    this.#shutDown = true;
    this.socket.shutdown();
  }

  /** Bytes of the current `send` that the kernel took so far. */
  get sent(): number {
    return this.#offset;
  }

  #read(chunk: Uint8Array): void {
    this.received += chunk.byteLength;
    this.maxChunk = Math.max(this.maxChunk, chunk.byteLength);
    this.hasher.update(chunk);
    if (this.keepText) {
      this.text += Buffer.from(chunk).toString("latin1");
    }
    if (this.slowReadMs > 0) {
      this.socket.pause();
      setTimeout(() => this.socket.resume(), this.slowReadMs);
    }
  }

  #pump(): void {
    const bytes = this.#outgoing;
    if (bytes === null) {
      return;
    }
    while (this.#offset < bytes.byteLength) {
      const written = this.socket.write(bytes.subarray(this.#offset));
      if (written <= 0) {
        return;
      }
      this.#offset += written;
    }

    this.#outgoing = null;
    if (this.#shutdownWhenSent) {
      this.shutdown();
    }
    this.#sent?.();
  }
}

/** A loopback (or Unix socket) listener whose accepted sockets are Peers, kept in accept order. */
export class PeerListener {
  readonly listener: TCPSocketListener<Peer> | UnixSocketListener<Peer>;
  readonly peers: Peer[] = [];
  readonly #unixPath: string | undefined;
  #consumed = 0;

  /** Listens on 127.0.0.1 with a kernel-chosen port, or on `unixPath` when given. */
  constructor(onAccept: (peer: Peer) => void = () => {}, unixPath?: string) {
    const socket: SocketHandler<Peer> = {
      ...Peer.handlers,
      open: (accepted) => {
        const peer = new Peer();
        peer.socket = accepted;
        accepted.data = peer;
        this.peers.push(peer);
        onAccept(peer);
      },
    };
    this.#unixPath = unixPath;
    this.listener =
      unixPath === undefined
        ? Bun.listen<Peer>({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket })
        : Bun.listen<Peer>({ unix: unixPath, allowHalfOpen: true, socket });
  }

  /** The TCP port; throws for a Unix socket listener. */
  get port(): number {
    if (!("port" in this.listener)) {
      throw new Error("a Unix socket PeerListener has no port");
    }

    return this.listener.port;
  }

  get target(): string {
    return this.#unixPath === undefined ? `127.0.0.1:${this.port}` : `unix:${this.#unixPath}`;
  }

  /** Waits for the next accepted peer: the n-th call returns the n-th peer. */
  async next(): Promise<Peer> {
    const index = this.#consumed++;
    await waitFor(`backend peer ${index} to be accepted`, () => this.peers.length > index);

    return this.peers[index]!;
  }

  stop(): void {
    this.listener.stop(true);
  }
}

/** Deterministic pseudo-random bytes (xorshift32), so a test can regenerate what it expects. */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  const words = new Uint32Array(bytes.buffer, 0, Math.floor(length / 4));
  let state = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    words[i] = state >>> 0;
  }
  for (let i = words.length * 4; i < length; i++) {
    bytes[i] = i & 0xff;
  }

  return bytes;
}

/** Hex SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

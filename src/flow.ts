import type { Socket } from "bun";

/** A Bun socket of either side; its `data` belongs to the code that opened it. */
export type RelaySocket = Socket<unknown>;

/** Bytes a flow queues without a sink before it pauses its source. */
export const UNPAUSED_QUEUE_LIMIT = 64 * 1024;

/** A callback run once, when a flow's sink first takes only part of a write, so that the sink's `drain` event reaches the flow. */
export type SinkBackedUpHandler = (sink: RelaySocket) => void;

/** The receiver of a flow's failed writes: a write to the sink that fails means its peer reset or closed it. */
export interface FlowOwner {
  sinkWriteFailed(flow: Flow): void;
}

/**
 * One direction of a connection: bytes read from `source` are written to `sink`.
 *
 * Bun's `write()` is unbuffered: it returns how many bytes the kernel took and keeps
 * nothing. A flow keeps the unsent tail and pauses the source until the sink drains,
 * so at most one read of the source is queued per direction. On Linux, Bun 1.4.4 reads
 * at most 512 KiB (524,288 bytes) from a TCP socket at a time and 219,264 bytes from a
 * Unix socket. Both figures were measured with a loopback sender that writes 64 MiB as
 * fast as the socket takes it. A connection therefore queues at most 1 MiB in tinylb, and
 * `test/relay.test.ts` checks the bound with a client that stops reading.
 *
 * Before the sink is set (while the backend is dialed), the source is paused only once
 * `UNPAUSED_QUEUE_LIMIT` bytes are queued, so that phase can queue 64 KiB plus one read.
 * A pause and resume cost six system calls and two wake-ups in Bun 1.4.4 (seen with
 * strace), and a first request (an HTTP request, a TLS ClientHello) is far smaller. Kernel socket
 * buffers come on top, sized by `net.ipv4.tcp_rmem` and `net.ipv4.tcp_wmem`.
 *
 * A FIN from the source becomes `shutdown()` on the sink once the tail is flushed;
 * `end(data)` is never used because it can drop the tail of `data`.
 */
export class Flow {
  /** Bytes the kernel accepted for the sink. */
  bytes = 0;

  #source: RelaySocket;
  #sink: RelaySocket | null = null;
  // Unsent chunks, oldest first; allocated on the first partial write, which most flows never see.
  #pending: Uint8Array[] | null = null;
  #pendingBytes = 0;
  #sourcePaused = false;
  #sourceEnded = false;
  #sinkShut = false;
  #sinkFailed = false;
  #onSinkBackedUp: SinkBackedUpHandler | null = null;
  readonly #owner: FlowOwner | null;

  /**
   * @param source the socket read from.
   * @param sourcePaused true when the caller already paused the source; the flow
   *   resumes it once it has a sink and nothing queued.
   * @param owner called at once when a write to the sink fails, because Bun may report no
   *   end or close of that socket afterwards.
   */
  constructor(source: RelaySocket, sourcePaused = false, owner: FlowOwner | null = null) {
    this.#source = source;
    this.#sourcePaused = sourcePaused;
    this.#owner = owner;
  }

  /** Bytes read from the source and not yet taken by the sink. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** True once the source sent FIN and the sink was shut down after the last byte. */
  get finished(): boolean {
    return this.#sinkShut;
  }

  /** True once the source sent FIN, whether or not the sink has taken every byte yet. */
  get sourceEnded(): boolean {
    return this.#sourceEnded;
  }

  /**
   * True once a write to the sink failed, which means the sink's peer reset it (TCP) or closed
   * it (Unix sockets). Such a write takes the socket's error, so Bun 1.4.4 then reports the
   * reset as an end of stream, as a close without an error (seen with TCP_INFO: the socket
   * was already in CLOSE), or not at all.
   */
  get sinkFailed(): boolean {
    return this.#sinkFailed;
  }

  /**
   * Sets the sink and writes what was queued while there was none.
   *
   * @param onSinkBackedUp run once, when the sink first takes only part of a write. A caller
   *   passes it for a sink whose drain handler is installed only then (see `dialer.ts`).
   * @param prefix bytes written before anything read from the source, such as a PROXY
   *   protocol header. They go out in the same write as the queued bytes, and `bytes` counts them.
   */
  setSink(sink: RelaySocket, onSinkBackedUp?: SinkBackedUpHandler, prefix?: Uint8Array): void {
    this.#sink = sink;
    this.#onSinkBackedUp = onSinkBackedUp ?? null;
    if (prefix !== undefined) {
      this.#queueFirst(prefix);
    }
    this.flush();
  }

  /** Writes a chunk read from the source, queueing what the sink does not take. */
  forward(chunk: Uint8Array): void {
    if (this.#sinkFailed) {
      return;
    }
    if (this.#sink === null || this.#pendingBytes > 0) {
      this.#queue(chunk);

      return;
    }

    const written = this.#sink.write(chunk);
    if (written < 0) {
      this.#writeFailed();

      return;
    }
    this.bytes += written;
    if (written < chunk.byteLength) {
      this.#sinkBackedUp();
      this.#queue(chunk.subarray(written));
    }
  }

  /** Writes queued bytes after the sink drained; resumes the source or passes on its FIN once empty. */
  flush(): void {
    const sink = this.#sink;
    const pending = this.#pending;
    if (sink === null) {
      return;
    }

    while (pending !== null && pending.length > 0) {
      const head = pending[0]!;
      const written = sink.write(head);
      if (written < 0) {
        this.#writeFailed();

        return;
      }
      this.bytes += written;
      this.#pendingBytes -= written;
      if (written < head.byteLength) {
        pending[0] = head.subarray(written);
        this.#sinkBackedUp();
        this.#pauseSource();

        return;
      }
      pending.shift();
    }

    if (this.#sourceEnded) {
      this.#shutdownSink();
    } else if (this.#sourcePaused) {
      this.#sourcePaused = false;
      this.#source.resume();
    }
  }

  /** Records the source's FIN and shuts the sink's write side once the queue is empty. */
  end(): void {
    this.#recordEnd(false);
  }

  /**
   * Records the source's FIN like `end`, for a caller that closes the sink with its `end()`
   * right after this call when the queue is empty. The flow then counts as finished without
   * a shutdown(2), because closing the socket sends the same FIN.
   */
  endBeforeSinkClose(): void {
    this.#recordEnd(true);
  }

  #recordEnd(sinkClosing: boolean): void {
    this.#sourceEnded = true;
    if (this.#sink === null || this.#pendingBytes > 0) {
      return;
    }
    if (sinkClosing) {
      this.#sinkShut = true;
    } else {
      this.#shutdownSink();
    }
  }

  /** Puts `prefix` before the queued bytes, joined into one chunk so that one write sends them all. */
  #queueFirst(prefix: Uint8Array): void {
    const pending = this.#pending;
    const joined = pending === null || pending.length === 0 ? prefix : Buffer.concat([prefix, ...pending]);
    this.#pending = [joined];
    this.#pendingBytes += prefix.byteLength;
  }

  #queue(chunk: Uint8Array): void {
    (this.#pending ??= []).push(chunk);
    this.#pendingBytes += chunk.byteLength;
    if (this.#sink !== null || this.#pendingBytes >= UNPAUSED_QUEUE_LIMIT) {
      this.#pauseSource();
    }
  }

  #writeFailed(): void {
    if (!this.#sinkFailed) {
      this.#sinkFailed = true;
      // The sink can take nothing more, so the queue and every later chunk are dropped.
      this.#pending = null;
      this.#pendingBytes = 0;
      this.#owner?.sinkWriteFailed(this);
    }
  }

  #sinkBackedUp(): void {
    const handler = this.#onSinkBackedUp;
    if (handler !== null) {
      this.#onSinkBackedUp = null;
      handler(this.#sink!);
    }
  }

  #pauseSource(): void {
    if (!this.#sourcePaused && !this.#sourceEnded) {
      this.#sourcePaused = true;
      this.#source.pause();
    }
  }

  #shutdownSink(): void {
    if (!this.#sinkShut) {
      this.#sinkShut = true;
      this.#sink?.shutdown();
    }
  }
}

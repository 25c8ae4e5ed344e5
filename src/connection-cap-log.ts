import type { Logger } from "./logger.ts";

/**
 * Counts the connections an HTTP server closed at accept because its connection cap was
 * reached, and logs the cap edge-triggered. It logs one warning when the first connection is
 * rejected, and one info line once the open connections fall to half the cap. The gap
 * between the two keeps a flood that holds the server at its cap, where every closed
 * connection is replaced at once, from logging a pair of lines per connection.
 */
export class ConnectionCapLog {
  /** Connections rejected since the server started. */
  rejected = 0;
  #atCap = false;
  #rejectedBefore = 0;

  /**
   * @param subject the server's name at the start of each line, such as "admin API".
   * @param maxConnections the cap, logged with the warning.
   */
  constructor(
    private readonly log: Logger,
    private readonly subject: string,
    private readonly maxConnections: number,
  ) {}

  /** Counts a connection closed at accept, and warns when it is the first since the cap was reached. */
  connectionRejected(): void {
    this.rejected++;
    if (this.#atCap) {
      return;
    }

    this.#atCap = true;
    this.#rejectedBefore = this.rejected - 1;
    this.log.warn(`${this.subject} connection cap reached; new connections are closed at accept`, { maxConnections: this.maxConnections });
  }

  /** Notes that a connection closed, leaving `open`, and logs once half the cap is free after a warning. */
  connectionClosed(open: number): void {
    if (!this.#atCap || open > this.maxConnections / 2) {
      return;
    }

    this.#atCap = false;
    this.log.info(`${this.subject} connections are below half the cap again`, { open, maxConnections: this.maxConnections, rejected: this.rejected - this.#rejectedBefore });
  }
}

import { Logger } from "../../src/logger.ts";

/** A logger at debug level that keeps its JSON lines, parsed, for assertions. */
export class LogLines {
  readonly records: Record<string, unknown>[] = [];
  readonly logger = new Logger({ level: "debug", format: "json", sink: (line) => this.records.push(JSON.parse(line)) });

  /** Records whose message equals `msg`. */
  withMessage(msg: string): Record<string, unknown>[] {
    return this.records.filter((record) => record.msg === msg);
  }

  /** Messages in the order they were logged, optionally only those of `backend`. */
  messages(backend?: string): string[] {
    return this.records.filter((record) => backend === undefined || record.backend === backend).map((record) => String(record.msg));
  }
}

/** Returns the `retryInMs` values of text log lines, in order, such as a provider's back-off delays. */
export function retryDelays(lines: string[]): number[] {
  return lines.map((line) => Number(/retryInMs=(\d+)/.exec(line)?.[1] ?? Number.NaN)).filter((delay) => !Number.isNaN(delay));
}

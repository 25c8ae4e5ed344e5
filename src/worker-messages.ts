import type { Address } from "./address.ts";
import type { LogFormat, LogLevel } from "./logger.ts";
import type { ServerOptions } from "./server.ts";

/** Server settings a relay worker can receive: plain data only, no logger or clock. */
export type WorkerServerOptions = Omit<ServerOptions, "logger" | "clock"> & { listen: Address[] };

/** A message from the main thread to a relay worker. */
export type WorkerCommand =
  | { type: "start"; index: number; options: WorkerServerOptions; logLevel: LogLevel; logFormat: LogFormat }
  | { type: "set"; backends: { id: string; target: string }[] }
  | { type: "close-all"; reason: string }
  | { type: "shutdown"; graceMs: number };

/** Growth of a worker's traffic counters since its previous delta. */
export interface StatsDelta {
  accepted: number;
  unserved: number;
  backends: Record<string, { total: number; dialFailures: number; bytesToBackend: number; bytesToClient: number }>;
}

/** A message from a relay worker to the main thread. */
export type WorkerEvent =
  | { type: "started" }
  | { type: "start-failed"; message: string }
  | { type: "stats"; delta: StatsDelta; open: number }
  | { type: "stopped"; forced: number };

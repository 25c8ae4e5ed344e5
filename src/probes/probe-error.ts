import { describeSocketError } from "../socket-errors.ts";

/** A failed probe, with the reason in words; the health checker logs it when health flips. */
export class ProbeError extends Error {
  override name = "ProbeError";
}

/** Formats a socket error in plain words plus its code, or another error as its message plus its code. */
export function errorDetail(error: unknown): string {
  return describeSocketError(error);
}

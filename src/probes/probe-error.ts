/** A failed probe, with the reason in words; the health checker logs it when health flips. */
export class ProbeError extends Error {
  override name = "ProbeError";
}

/** Formats a socket or file error as its message plus its code. */
export function errorDetail(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;

    return typeof code === "string" && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }

  return String(error);
}

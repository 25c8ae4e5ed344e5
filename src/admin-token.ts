/**
 * The admin API's bearer token: reading its file, warnings about a weak token or an open file,
 * and the check of each request, which SIGHUP can point at a rotated token.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { statSync } from "node:fs";
import { ConfigError } from "./config.ts";
import { describeFileError } from "./file-errors.ts";
import { formatFileMode } from "./file-mode.ts";
import type { Logger } from "./logger.ts";
import { MAX_TOKEN_FILE_BYTES, readRegularFile } from "./regular-file.ts";

/** Shortest admin token, in bytes, that start-up and `tinylb check` accept without a warning. */
export const MIN_TOKEN_BYTES = 16;

/** Mode bits that let the file's group or others read it. */
const GROUP_OR_OTHER_READ = 0o044;

/**
 * Reads a bearer token file: its content without surrounding whitespace.
 *
 * @throws {ConfigError} when the file cannot be read or contains no token.
 */
export function readTokenFile(path: string): string {
  let token: string;
  try {
    token = readRegularFile(path, MAX_TOKEN_FILE_BYTES).toString("utf8").trim();
  } catch (error) {
    throw new ConfigError(`read admin token file ${path} failed: ${describeFileError(error)}`, { cause: error });
  }
  if (token === "") {
    throw new ConfigError(`invalid admin token file ${path}: it is empty; write one token into it, such as with head -c 32 /dev/urandom | base64 > ${path}`);
  }
  if (/\s/.test(token)) {
    throw new ConfigError(`invalid admin token file ${path}: it contains spaces or several lines, but it must contain one token without spaces`);
  }

  return token;
}

/** A warning about the admin token file, with the fields to log beside it. */
export interface TokenWarning {
  message: string;
  fields: Record<string, string | number>;
}

/**
 * Returns the warnings about the admin token `token` read from `path`: a token shorter than
 * `MIN_TOKEN_BYTES`, and a file that its group or others can read. No warning contains the
 * token. A file that cannot be stat'ed gets no mode warning, because reading it reports that.
 */
export function adminTokenWarnings(path: string, token: string): TokenWarning[] {
  const warnings: TokenWarning[] = [];
  const bytes = Buffer.byteLength(token);
  if (bytes < MIN_TOKEN_BYTES) {
    warnings.push({
      message: `the admin token is shorter than ${MIN_TOKEN_BYTES} bytes, so it is easy to guess; write a long random one, such as with head -c 32 /dev/urandom | base64 > ${path}`,
      fields: { file: path, bytes },
    });
  }

  const mode = statSync(path, { throwIfNoEntry: false })?.mode;
  if (mode !== undefined && (mode & GROUP_OR_OTHER_READ) !== 0) {
    const shown = formatFileMode(mode);
    warnings.push({
      message: `the admin token file has mode ${shown}, so its group or others can read the token; run chmod 600 ${path}`,
      fields: { file: path, mode: shown },
    });
  }

  return warnings;
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/**
 * The token that every admin request must carry as `Authorization: Bearer TOKEN`. Only its
 * SHA-256 digest is kept, and requests are compared against it in constant time.
 */
export class AdminToken {
  readonly file: string;
  #expected: Buffer;

  constructor(file: string, token: string) {
    this.file = file;
    this.#expected = digest(token);
  }

  /** Returns whether `request` carries the token. */
  authorizes(request: Request): boolean {
    const header = request.headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    // Compare digests, which have equal length, so the time taken does not depend on the token.
    const presented = digest(match?.[1] ?? "");

    return timingSafeEqual(presented, this.#expected) && match !== null;
  }

  /**
   * Reads the file again, so a rotated token applies from the next request on. A file that
   * cannot be read or contains no valid token keeps the running token, so a half-written file
   * never turns the check off. Logs the outcome and the warnings of `adminTokenWarnings`.
   */
  reload(log: Logger): void {
    let token: string;
    try {
      token = readTokenFile(this.file);
    } catch (error) {
      log.warn("admin token file re-read failed; requests still need the running token", { file: this.file, err: (error as Error).message });

      return;
    }

    const next = digest(token);
    if (next.equals(this.#expected)) {
      log.debug("admin token file re-read; the token is unchanged", { file: this.file });

      return;
    }
    this.#expected = next;
    for (const warning of adminTokenWarnings(this.file, token)) {
      log.warn(warning.message, warning.fields);
    }
    log.info("admin token replaced; requests need the token now in the file", { file: this.file });
  }
}

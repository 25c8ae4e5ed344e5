import { isAbsolute, relative } from "node:path";
import { type Address, formatAddress } from "./address.ts";
import type { DemoBackend } from "./demo.ts";

/** A client cannot dial a wildcard address, so the hints name the loopback address of its family. */
const WILDCARD_LOOPBACK: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };

/** The addresses and backends that the demo's instructions name. */
export interface DemoInstructions {
  /** The demo's bound listen address. */
  address: Address;
  /** Ids of the backends in the set, in rotation order. */
  ids: readonly string[];
  /** The bound admin API address, or undefined with `--admin off`. */
  admin: Address | undefined;
  /** The backend that runs outside the set. */
  spare: DemoBackend;
}

/**
 * Prints how to reach the demo and, when the admin API runs, the commands that read the set,
 * add the spare backend to it and remove the first backend.
 */
export function printInstructions({ address, ids, admin, spare }: DemoInstructions): void {
  const request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'";
  let curl: string;
  let nc: string;
  if (address.kind === "unix") {
    curl = `curl -s --unix-socket ${address.path} http://demo/`;
    nc = `nc -U ${address.path}`;
  } else {
    const host = WILDCARD_LOOPBACK[address.host] ?? address.host;
    curl = `curl -s http://${formatAddress({ ...address, host })}/`;
    nc = `nc ${host} ${address.port}`;
  }
  process.stdout.write(
    [
      `tinylb demo: balancing ${ids.join(", ")} on ${formatAddress(address)}`,
      `Try it: for i in 1 2 3 4; do ${curl}; done`,
      `   or: ${request} | ${nc}`,
      ...(admin === undefined ? [] : adminCommandLines(admin, ids[0]!, spare)),
      "Press Ctrl-C to stop.",
      "",
    ]
      .filter((line) => line !== "")
      .join("\n") + "\n",
  );
}

/** Returns the lines that show the admin commands, each runnable as printed from the current folder. */
function adminCommandLines(admin: Address, removedId: string, spare: DemoBackend): string[] {
  const program = programCommand();
  const flag = `--admin ${shellWord(formatAddress(admin))}`;

  return [
    `Change the set at run time, then run the loop above again (${spare.id} is running but not in the set):`,
    `  ${program} status ${flag}`,
    `  ${program} add ${spare.id} 127.0.0.1:${spare.http.port} ${flag}`,
    `  ${program} remove ${removedId} ${flag}`,
  ];
}

/**
 * Returns the command that runs this tinylb, such as `./dist/tinylb` after `npm run demo`: the
 * executable, relative to the current folder when inside it. Outside a compiled binary, whose
 * entry file is under Bun's `/$bunfs/` folder, it is Bun followed by the entry file.
 */
function programCommand(): string {
  const files = Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];

  return files.map((file) => shellWord(relativeToCwd(file))).join(" ");
}

/** Returns `path` relative to the current folder, with a leading `./`, when it is inside that folder, or else `path` unchanged. */
function relativeToCwd(path: string): string {
  const inCwd = relative(process.cwd(), path);

  return inCwd === "" || inCwd.startsWith("..") || isAbsolute(inCwd) ? path : `./${inCwd}`;
}

/** Quotes `word` for a POSIX shell when it contains a character the shell would interpret. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

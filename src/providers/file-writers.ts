import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";

/** A process that has a file open for writing. */
export interface FileWriter {
  pid: number;
  /** The process's command name from /proc/PID/comm, such as `cat` or `vim`. */
  command: string;
}

/** `O_ACCMODE` from Linux's <fcntl.h>: the access mode bits of a descriptor's flags. */
const O_ACCMODE = 0o3;
/** `O_RDONLY` from Linux's <fcntl.h>. */
const O_RDONLY = 0o0;

/**
 * Finds the other processes that have the file at `path` open for writing, from /proc/PID/fd
 * and /proc/PID/fdinfo. A shell redirection such as `cat > tinylb.yaml` keeps the file open
 * until its input ends, so a file that such a process still has open may not be whole yet.
 * Processes of other users are skipped where /proc hides their descriptors (without root or
 * CAP_SYS_PTRACE), and so is a path that cannot be resolved. Returns at most `max` writers.
 *
 * NOTE: this reads every process's descriptors, so callers run it only while a save waits.
 */
export function findFileWriters(path: string, max = 4, proc = "/proc"): FileWriter[] {
  let target: string;
  let pids: string[];
  try {
    target = realpathSync(path);
    pids = readdirSync(proc).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  } catch {
    return [];
  }

  const writers: FileWriter[] = [];
  for (const pid of pids) {
    if (writers.length >= max) {
      break;
    }
    if (holdsForWriting(`${proc}/${pid}`, target)) {
      writers.push({ pid: Number(pid), command: readCommand(`${proc}/${pid}`) });
    }
  }

  return writers;
}

/** Returns true when the process at `processDir` has a descriptor on `target` that is not read-only. */
function holdsForWriting(processDir: string, target: string): boolean {
  let descriptors: string[];
  try {
    descriptors = readdirSync(`${processDir}/fd`);
  } catch {
    return false;
  }

  for (const fd of descriptors) {
    try {
      if (readlinkSync(`${processDir}/fd/${fd}`) !== target) {
        continue;
      }
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`${processDir}/fdinfo/${fd}`, "utf8"));
      if (flags !== null && (Number.parseInt(flags[1]!, 8) & O_ACCMODE) !== O_RDONLY) {
        return true;
      }
    } catch {
      // The descriptor closed, or the process exited, while it was read.
    }
  }

  return false;
}

function readCommand(processDir: string): string {
  try {
    return readFileSync(`${processDir}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

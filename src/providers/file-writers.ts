import { readdir, readFile, stat } from "node:fs/promises";

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
 * A descriptor matches by device and inode, so a writer through a hard link or another mount
 * of the file counts too. Processes of other users are skipped where /proc hides their
 * descriptors (without root or CAP_SYS_PTRACE), and so is a file that cannot be read.
 * Returns at most `max` writers.
 * NOTE: processes in another PID namespace, such as the host's when tinylb runs in a pod
 * without hostPID, are not in this /proc, so their writes are not seen.
 *
 * It reads every process's descriptors, one process at a time and without blocking the event
 * loop, which may be the one that relays connections: a synchronous scan took 68 to 93 ms with
 * one process holding 15,000 descriptors.
 */
export async function findFileWriters(path: string, max = 4, proc = "/proc"): Promise<FileWriter[]> {
  let target: FileId;
  let pids: string[];
  try {
    target = await stat(path);
    pids = (await readdir(proc)).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  } catch {
    return [];
  }

  const writers: FileWriter[] = [];
  for (const pid of pids) {
    if (writers.length >= max) {
      break;
    }
    if (await holdsForWriting(`${proc}/${pid}`, target)) {
      writers.push({ pid: Number(pid), command: await readCommand(`${proc}/${pid}`) });
    }
  }

  return writers;
}

/** The device and inode that identify a file, whatever its path. */
interface FileId {
  dev: number;
  ino: number;
}

/** Returns true when the process at `processDir` has a descriptor on the file `target` that is not read-only. */
async function holdsForWriting(processDir: string, target: FileId): Promise<boolean> {
  let descriptors: string[];
  try {
    descriptors = await readdir(`${processDir}/fd`);
  } catch {
    return false;
  }

  // stat(2) of /proc/PID/fd/N follows the descriptor to its file, as the kernel resolves it.
  const files = await Promise.all(descriptors.map((fd) => stat(`${processDir}/fd/${fd}`).catch(() => undefined)));
  for (const [index, file] of files.entries()) {
    if (file === undefined || file.dev !== target.dev || file.ino !== target.ino) {
      continue;
    }
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(await readFile(`${processDir}/fdinfo/${descriptors[index]}`, "utf8"));
      if (flags !== null && (Number.parseInt(flags[1]!, 8) & O_ACCMODE) !== O_RDONLY) {
        return true;
      }
    } catch {
      // The descriptor closed, or the process exited, while it was read.
    }
  }

  return false;
}

async function readCommand(processDir: string): Promise<string> {
  try {
    return (await readFile(`${processDir}/comm`, "utf8")).trim();
  } catch {
    return "?";
  }
}

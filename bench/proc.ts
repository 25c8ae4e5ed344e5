import { readdirSync, readFileSync } from "node:fs";

/** Kernel clock ticks per second, the unit of utime and stime in /proc/PID/stat (100 on Linux). */
const CLOCK_TICKS = 100;

/** Fields of /proc/PID/stat after the command name, which may itself contain spaces. */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }

  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/** Returns the process and every descendant, found by scanning the parent ids in /proc. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    const child = Number(entry);
    if (!Number.isInteger(child)) {
      continue;
    }
    const fields = statFields(child);
    if (fields !== undefined) {
      // Field 4 of stat is the parent id; index 1 once pid and name are cut off.
      parents.set(child, Number(fields[1]));
    }
  }

  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) {
      if (parent === tree[i]) {
        tree.push(child);
      }
    }
  }

  return tree;
}

/** Returns the user plus system CPU seconds used so far by these processes, all threads included. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields !== undefined) {
      // utime and stime are fields 14 and 15 of stat.
      ticks += Number(fields[11]) + Number(fields[12]);
    }
  }

  return ticks / CLOCK_TICKS;
}

/** Returns the summed resident set size of these processes in bytes (VmRSS of /proc/PID/status). */
export function rssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      total += match === null ? 0 : Number(match[1]) * 1024;
    } catch {
      // The process is gone, so it uses no memory.
    }
  }

  return total;
}

/** Returns the hard limit on open file descriptors of this process. */
export function descriptorHardLimit(): number {
  const match = /^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));

  return match === null ? 1024 : Number(match[1]);
}

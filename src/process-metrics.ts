import { readdirSync, readFileSync } from "node:fs";

/** One sample of a standard Prometheus process metric, with the HELP text the Prometheus client libraries write. */
export interface ProcessMetric {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: number;
}

/**
 * Clock ticks per second of the CPU times in /proc/PID/stat: USER_HZ, which Linux fixes at 100
 * on x86-64 and arm64 (the platforms tinylb is built for), whatever the kernel's own tick rate.
 */
const TICKS_PER_SECOND = 100;

/**
 * Reads the standard process metrics of this process from `procDir` (/proc/self): CPU time,
 * resident and virtual memory, and open and maximum file descriptors. Each read is a few small
 * files, cheap enough for every scrape. A metric whose file is missing or unreadable, as where
 * /proc is not mounted, is left out.
 */
export function readProcessMetrics(procDir = "/proc/self"): ProcessMetric[] {
  const metrics: ProcessMetric[] = [];
  const stat = statFields(readText(`${procDir}/stat`));
  if (stat !== undefined) {
    const cpuSeconds = (Number(stat.userTicks) + Number(stat.systemTicks)) / TICKS_PER_SECOND;
    metrics.push({ name: "process_cpu_seconds_total", type: "counter", help: "Total user and system CPU time spent in seconds.", value: cpuSeconds });
    metrics.push({ name: "process_virtual_memory_bytes", type: "gauge", help: "Virtual memory size in bytes.", value: Number(stat.virtualBytes) });
  }

  const residentKiB = statusKiB(readText(`${procDir}/status`), "VmRSS");
  if (residentKiB !== undefined) {
    metrics.push({ name: "process_resident_memory_bytes", type: "gauge", help: "Resident memory size in bytes.", value: residentKiB * 1024 });
  }

  const openFds = countEntries(`${procDir}/fd`);
  if (openFds !== undefined) {
    metrics.push({ name: "process_open_fds", type: "gauge", help: "Number of open file descriptors.", value: openFds });
  }

  const maxFds = openFilesLimit(readText(`${procDir}/limits`));
  if (maxFds !== undefined) {
    metrics.push({ name: "process_max_fds", type: "gauge", help: "Maximum number of open file descriptors.", value: maxFds });
  }

  return metrics;
}

/**
 * Returns the CPU times (fields 14 and 15) and the virtual memory size (field 23) of a
 * /proc/PID/stat line. The command name (field 2) may contain spaces and parentheses, so the
 * fields are counted from its last ")".
 */
function statFields(text: string | undefined): { userTicks: string; systemTicks: string; virtualBytes: string } | undefined {
  const nameEnd = text?.lastIndexOf(")") ?? -1;
  if (text === undefined || nameEnd < 0) {
    return undefined;
  }

  // fields[0] is field 3 (the state).
  const fields = text.slice(nameEnd + 1).trim().split(/\s+/);
  const [userTicks, systemTicks, virtualBytes] = [fields[11], fields[12], fields[20]];
  if (![userTicks, systemTicks, virtualBytes].every((field) => field !== undefined && /^\d+$/.test(field))) {
    return undefined;
  }

  return { userTicks: userTicks!, systemTicks: systemTicks!, virtualBytes: virtualBytes! };
}

/** Returns the value in KiB of a `Key:   123 kB` line of /proc/PID/status. */
function statusKiB(text: string | undefined, key: string): number | undefined {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(text ?? "");

  return match === null ? undefined : Number(match[1]);
}

/** Returns the soft limit of the "Max open files" line of /proc/PID/limits; undefined when it is "unlimited". */
function openFilesLimit(text: string | undefined): number | undefined {
  const match = /^Max open files\s+(\d+)\s/m.exec(text ?? "");

  return match === null ? undefined : Number(match[1]);
}

/** Counts the entries of a folder such as /proc/self/fd. The count includes the descriptor that reads the folder, as in the Prometheus clients. */
function countEntries(path: string): number | undefined {
  try {
    return readdirSync(path).length;
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

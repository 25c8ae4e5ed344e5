import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

/** Debian packages that provide the peers; `libnginx-mod-stream` contains nginx's stream module. */
export const INSTALL_HINT = "apt-get install haproxy nginx-light libnginx-mod-stream iperf3 wrk util-linux iproute2";

/** Path of the dynamic stream module that Debian's libnginx-mod-stream installs. */
export const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** Peer programs found on PATH; a missing one disables what needs it. */
export interface Tools {
  haproxy: boolean;
  nginx: boolean;
  nginxStream: boolean;
  iperf3: boolean;
  wrk: boolean;
  taskset: boolean;
}

/** Looks up every peer program and prints how to install the missing ones. */
export function findTools(): Tools {
  const tools: Tools = {
    haproxy: Bun.which("haproxy") !== null,
    nginx: Bun.which("nginx") !== null,
    nginxStream: existsSync(NGINX_STREAM_MODULE),
    iperf3: Bun.which("iperf3") !== null,
    wrk: Bun.which("wrk") !== null,
    taskset: Bun.which("taskset") !== null,
  };
  const missing: Record<string, string> = {
    haproxy: "the HAProxy contenders are skipped",
    nginx: "the nginx contenders and every HTTP workload (nginx is also the HTTP backend) are skipped",
    nginxStream: `the nginx contenders are skipped (${NGINX_STREAM_MODULE} not found)`,
    iperf3: "the bulk throughput workloads are skipped",
    wrk: "the connection-rate and kept-alive workloads are skipped",
    taskset: "the pinned placement is skipped",
  };
  for (const [tool, found] of Object.entries(tools)) {
    if (!found) {
      console.log(`bench: ${tool} not found: ${missing[tool]}; install with: ${INSTALL_HINT}`);
    }
  }

  return tools;
}

function firstLine(argv: string[]): string {
  if (Bun.which(argv[0]!) === null) {
    return "not installed";
  }
  const result = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  const text = (result.stdout.toString() + result.stderr.toString()).trim();

  return text.split("\n")[0] ?? "";
}

/** Versions of the contenders and tools, the kernel and the CPU, for the report. */
export function describeMachine(tinylbBinary: string): Record<string, string> {
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";

  return {
    tinylb: firstLine([tinylbBinary, "--version"]),
    HAProxy: firstLine(["haproxy", "-v"]),
    nginx: firstLine(["nginx", "-v"]),
    iperf3: firstLine(["iperf3", "--version"]),
    wrk: firstLine(["wrk", "--version"]),
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    CPU: `${cpuModel}, ${cpus().length} cores online`,
  };
}

/**
 * Builds tinylb with build.ts and copies the binary into `workDir`, so a rebuild of
 * dist/tinylb during the run does not change the contender.
 */
export function buildTinylb(repoDir: string, workDir: string): string {
  const build = Bun.spawnSync([process.execPath, "build.ts"], { cwd: repoDir, stdout: "inherit", stderr: "inherit" });
  if (!build.success) {
    throw new Error(`bun build.ts failed with exit code ${build.exitCode}`);
  }
  const binary = join(workDir, "tinylb");
  copyFileSync(join(repoDir, "dist", "tinylb"), binary);

  return binary;
}

/** Returns true when the binary's help lists `--workers`. */
export function supportsWorkers(tinylbBinary: string): boolean {
  return Bun.spawnSync([tinylbBinary, "--help"]).stdout.toString().includes("--workers");
}

/**
 * Returns the flags that keep a benchmarked tinylb to its listener: `--admin off`, because
 * the default admin socket path is shared by every tinylb on the machine.
 */
export function tinylbBenchFlags(tinylbBinary: string): string[] {
  return Bun.spawnSync([tinylbBinary, "--help"]).stdout.toString().includes("--admin ADDR") ? ["--admin", "off"] : [];
}

/** Environment variable set inside the benchmark's own network namespace. */
const NETNS_MARK = "TINYLB_BENCH_NETNS";

/**
 * Re-runs the benchmark inside a new network namespace with only a loopback interface, so its
 * fixed ports cannot meet anything else on the machine. Returns the child's exit code, or
 * undefined when already inside one or when namespaces are not available (then the run
 * uses the host's loopback).
 */
export async function reexecInNetworkNamespace(argv: string[]): Promise<number | undefined> {
  if (process.env[NETNS_MARK] === "1") {
    // The ports the benchmark binds (10000-19999) stay out of the ephemeral range.
    writeFileSync("/proc/sys/net/ipv4/ip_local_port_range", "20000 65000");

    return undefined;
  }
  if (argv.includes("--host-network") || Bun.which("unshare") === null || Bun.which("ip") === null || process.getuid?.() !== 0) {
    console.log("bench: running on the host's loopback (no private network namespace: needs root, unshare and ip)");

    return undefined;
  }

  const child = Bun.spawn(["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, process.argv[1]!, ...argv], {
    stdio: ["inherit", "inherit", "inherit"],
    env: { ...process.env, [NETNS_MARK]: "1" },
  });
  // unshare and sh exec the benchmark, so the child's pid is the benchmark's: pass stops on.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => child.kill(signal));
  }

  return (await child.exited) ?? 1;
}

/** True when this process runs in the namespace that `reexecInNetworkNamespace` created. */
export function inPrivateNetwork(): boolean {
  return process.env[NETNS_MARK] === "1";
}

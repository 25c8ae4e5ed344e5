import { readFileSync } from "node:fs";

/** Sockets of this machine in SYN_SENT towards loopback port `port`, read from /proc/net/tcp (state 02). */
export function synSentTo(port: number): number {
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;

  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .filter((line) => {
      const fields = line.trim().split(/\s+/);

      return fields[2] === remote && fields[3] === "02";
    }).length;
}

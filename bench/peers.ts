import type { Socket, TCPSocketListener } from "bun";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type StartedProcess, startProcess, waitForPort } from "./processes.ts";

/** Response body of the HTTP backends; each reply is this plus nginx's headers. */
export const HTTP_BODY = "ok\n";

/**
 * HTTP backends for the request workloads: one nginx process with one worker, serving a
 * fixed 3-byte reply on each port. Idle connections are kept for 300 s so the idle-memory
 * workload can hold them open. `worker_connections` is twice the connections needed,
 * because nginx 1.22 starts closing idle keepalive connections ("worker_connections are
 * not enough, reusing connections") at about 94% of it.
 */
export async function startHttpBackends(workDir: string, ports: number[], maxConnections: number, cpus?: string): Promise<StartedProcess> {
  const listens = ports.map((port) => `    listen 127.0.0.1:${port} backlog=4096;`).join("\n");
  const config = `daemon off;
worker_processes 1;
worker_rlimit_nofile ${2 * maxConnections + 100};
pid ${join(workDir, "http-backends.pid")};
error_log stderr warn;
events {
  worker_connections ${2 * maxConnections + 100};
}
http {
  access_log off;
  client_body_temp_path ${workDir};
  proxy_temp_path ${workDir};
  fastcgi_temp_path ${workDir};
  uwsgi_temp_path ${workDir};
  scgi_temp_path ${workDir};
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  server {
${listens}
    location / {
      return 200 "${HTTP_BODY.trim()}\\n";
    }
  }
}
`;
  const path = join(workDir, "http-backends.conf");
  writeFileSync(path, config);
  const process = startProcess(["nginx", "-p", workDir, "-e", "stderr", "-c", path], cpus);
  for (const port of ports) {
    await waitForPort(port, 10_000, process);
  }

  return process;
}

/** Starts an iperf3 server for the bulk workloads; it serves one test at a time. */
export async function startIperfServer(port: number, cpus?: string): Promise<StartedProcess> {
  const process = startProcess(["iperf3", "--server", "--port", String(port), "--bind", "127.0.0.1"], cpus);
  await waitForPort(port, 10_000, process);

  return process;
}

/**
 * An in-process echo backend for the correctness check. It writes back every byte it reads,
 * in order and with backpressure, and sends its own FIN after the client's once every
 * byte is written, so a client that half-closes receives everything and then a FIN.
 */
export class EchoBackend {
  readonly listener: TCPSocketListener<EchoState>;

  constructor() {
    this.listener = Bun.listen<EchoState>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(socket) {
          socket.data = { pending: [], ended: false };
        },
        data(socket, chunk) {
          socket.data.pending.push(chunk);
          flushEcho(socket);
        },
        drain(socket) {
          flushEcho(socket);
        },
        end(socket) {
          socket.data.ended = true;
          flushEcho(socket);
        },
      },
    });
  }

  get target(): string {
    return `127.0.0.1:${this.listener.port}`;
  }

  stop(): void {
    this.listener.stop(true);
  }
}

interface EchoState {
  pending: Uint8Array[];
  ended: boolean;
}

function flushEcho(socket: Socket<EchoState>): void {
  const state = socket.data;
  while (state.pending.length > 0) {
    const head = state.pending[0]!;
    const written = socket.write(head);
    if (written < head.byteLength) {
      state.pending[0] = head.subarray(Math.max(written, 0));

      return;
    }
    state.pending.shift();
  }
  if (state.ended) {
    socket.shutdown();
  }
}

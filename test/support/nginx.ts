import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trackChild } from "./child-processes.ts";
import { waitFor } from "./wait.ts";

/** Path of Debian's nginx binary (package nginx-light). */
export const NGINX = "/usr/sbin/nginx";

/** Module of nginx's stream server (package libnginx-mod-stream). */
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** Returns true when nginx and its stream module are installed, so tests can report why they are skipped. */
export function nginxInstalled(): boolean {
  return existsSync(NGINX) && existsSync(STREAM_MODULE);
}

/** TLS files of the `https` listener. */
export interface NginxTls {
  cert: string;
  key: string;
}

/**
 * A real nginx that requires a PROXY protocol header (v1 or v2) on every listener, for the
 * PROXY protocol tests. It runs as a process of its own in the foreground, stopped by its pid.
 *
 * - `streamPort` (127.0.0.1 and [::1]): a stream server that replies to each connection with
 *   one line from the header, `CLIENT_ADDR CLIENT_PORT SERVER_ADDR SERVER_PORT`, and closes it.
 * - `httpPort`: plain HTTP, status 200 and `http CLIENT_ADDR URI` for every request.
 * - `httpsPort` (with `tls`): HTTPS with the header before the TLS handshake, status 200.
 *
 * Both HTTP servers log each request to `access.log` as `PORT STATUS CLIENT_ADDR URI`.
 *
 * nginx cannot pick its own ports, so `start` tries random high ports until they bind.
 */
export class Nginx {
  readonly dir: string;
  readonly streamPort: number;
  readonly #process: Subprocess<"ignore", "pipe", "pipe">;

  private constructor(dir: string, streamPort: number, process: Subprocess<"ignore", "pipe", "pipe">) {
    this.dir = dir;
    this.streamPort = streamPort;
    this.#process = process;
  }

  get httpPort(): number {
    return this.streamPort + 1;
  }

  get httpsPort(): number {
    return this.streamPort + 2;
  }

  /** Starts nginx; with `tls`, the https listener too. */
  static async start(tls?: NginxTls): Promise<Nginx> {
    const dir = mkdtempSync(join(tmpdir(), "tinylb-nginx-"));
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = 20_000 + Math.floor(Math.random() * 40_000);
      writeFileSync(join(dir, "nginx.conf"), configText(dir, port, tls));
      const child = trackChild(
        Bun.spawn([NGINX, "-p", dir, "-c", join(dir, "nginx.conf"), "-g", `daemon off; pid ${join(dir, "nginx.pid")};`], { stdin: "ignore", stdout: "pipe", stderr: "pipe" }),
      );
      const server = new Nginx(dir, port, child);
      const errorLog = (): string => (existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "");
      await waitFor("nginx to start or exit", () => existsSync(join(dir, "nginx.pid")) || child.exitCode !== null, 10_000);
      if (child.exitCode === null) {
        return server;
      }
      if (!errorLog().includes("Address already in use")) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`nginx failed to start:\n${errorLog()}`);
      }
      rmSync(join(dir, "error.log"), { force: true });
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error("nginx found no free ports in 20 attempts");
  }

  /** Lines of the HTTP servers' access log so far. */
  accessLog(): string[] {
    const path = join(this.dir, "access.log");

    return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((line) => line !== "") : [];
  }

  /** Stops nginx by its pid and removes its folder. */
  async stop(): Promise<void> {
    if (this.#process.exitCode === null) {
      this.#process.kill("SIGTERM");
      await this.#process.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function configText(dir: string, port: number, tls: NginxTls | undefined): string {
  const https = tls === undefined
    ? ""
    : `  server {
    listen 127.0.0.1:${port + 2} ssl proxy_protocol;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    access_log ${join(dir, "access.log")} requests;
    location / { return 200 "https $proxy_protocol_addr $request_uri\\n"; }
  }
`;

  return `load_module ${STREAM_MODULE};
error_log ${join(dir, "error.log")};
events {}
stream {
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    listen [::1]:${port} proxy_protocol;
    return "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n";
  }
}
http {
  log_format requests "$server_port $status $proxy_protocol_addr $request_uri";
  client_body_temp_path ${join(dir, "body")};
  proxy_temp_path ${join(dir, "proxy")};
  fastcgi_temp_path ${join(dir, "fastcgi")};
  uwsgi_temp_path ${join(dir, "uwsgi")};
  scgi_temp_path ${join(dir, "scgi")};
  server {
    listen 127.0.0.1:${port + 1} proxy_protocol;
    access_log ${join(dir, "access.log")} requests;
    location / { return 200 "http $proxy_protocol_addr $request_uri\\n"; }
  }
${https}}
`;
}

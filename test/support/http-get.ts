import type { Socket } from "bun";

/**
 * Sends `GET path HTTP/1.0` over a new TCP connection to 127.0.0.1:`port` and resolves
 * with the body, or with "closed" when the connection ends without a response, so each
 * request makes its own connection through the balancer.
 */
export function httpGet(port: number, path = "/"): Promise<string> {
  return new Promise((resolve, reject) => {
    let response = "";
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket: Socket<undefined>) {
          socket.write(`GET ${path} HTTP/1.0\r\nHost: tinylb-test\r\n\r\n`);
        },
        data(_socket: Socket<undefined>, chunk: Buffer) {
          response += chunk.toString("latin1");
        },
        close() {
          const split = response.indexOf("\r\n\r\n");
          resolve(split < 0 ? "closed" : response.slice(split + 4));
        },
        error() {},
      },
    }).catch(reject);
  });
}

import { afterEach, expect, test } from "bun:test";
import type { SocketHandler } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BoundListener, bindListener, describeListenError, ListenError } from "../src/listener.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

const greeter: SocketHandler<undefined> = {
  open(socket) {
    socket.end();
  },
  data() {},
};

function temporaryDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "tinylb-listener-"));
  cleanup.push(() => rmSync(directory, { recursive: true, force: true }));

  return directory;
}

async function bind(address: Parameters<typeof bindListener>[0]): Promise<BoundListener> {
  const listener = await bindListener(address, greeter);
  cleanup.push(() => listener.stop());

  return listener;
}

async function bindError(address: Parameters<typeof bindListener>[0]): Promise<ListenError> {
  try {
    await bind(address);
  } catch (error) {
    expect(error).toBeInstanceOf(ListenError);

    return error as ListenError;
  }
  throw new Error("expected the bind to fail");
}

test("bindListener reports the port the kernel picked", async () => {
  const listener = await bind({ kind: "tcp", host: "127.0.0.1", port: 0 });

  expect(listener.address.kind).toBe("tcp");
  const port = listener.address.kind === "tcp" ? listener.address.port : 0;
  expect(port).toBeGreaterThan(0);
  expect(listener.name).toBe(`127.0.0.1:${port}`);
});

test("bindListener rejects a TCP port already bound", async () => {
  const first = await bind({ kind: "tcp", host: "127.0.0.1", port: 0 });
  const port = first.address.kind === "tcp" ? first.address.port : 0;

  const error = await bindError({ kind: "tcp", host: "127.0.0.1", port });

  expect(error.message).toBe(`listen on 127.0.0.1:${port} failed: the address is already in use, such as by another tinylb; stop that listener or pick another address (EADDRINUSE)`);
});

test("bindListener names an outgoing connection on the port", async () => {
  // A connection whose local port the kernel picked from its range for outgoing connections.
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  cleanup.push(() => server.stop(true));
  const client = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {} } });
  cleanup.push(() => client.end());
  const port = client.localPort;
  const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);

  const error = await bindError({ kind: "tcp", host: "127.0.0.1", port });

  expect(error.message).toBe(
    `listen on 127.0.0.1:${port} failed: the address is already in use by an outgoing connection, since no socket listens on port ${port} and it is in the kernel's range for outgoing connections (net.ipv4.ip_local_port_range ${low}-${high}); pick a port outside that range (EADDRINUSE)`,
  );
});

test("bindListener rejects an IPv6 port already bound", async () => {
  const first = await bind({ kind: "tcp", host: "::1", port: 0 });
  const port = first.address.kind === "tcp" ? first.address.port : 0;

  const error = await bindError({ kind: "tcp", host: "::1", port });

  expect(error.message).toContain(`listen on [::1]:${port} failed`);
  expect(error.message).toContain("EADDRINUSE");
});

test("bindListener rejects a Unix path a live listener accepts on", async () => {
  const path = join(temporaryDirectory(), "live.sock");
  await bind({ kind: "unix", path });

  const error = await bindError({ kind: "unix", path });

  expect(error.message).toBe(`listen on unix:${path} failed: a listener already accepts on it (EADDRINUSE), such as another tinylb; stop it or pick another path`);
});

test("bindListener replaces a stale Unix socket file", async () => {
  const path = join(temporaryDirectory(), "stale.sock");
  // A socket file that nothing accepts on, as a process that died leaves behind.
  const made = Bun.spawnSync(["python3", "-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`]);
  expect(made.exitCode).toBe(0);
  expect(existsSync(path)).toBe(true);

  const listener = await bind({ kind: "unix", path });
  let ended = false;
  await Bun.connect({ unix: path, socket: { data() {}, end: () => void (ended = true), close: () => void (ended = true) } });
  await waitFor("the new listener to accept and end the connection", () => ended);

  expect(listener.name).toBe(`unix:${path}`);
});

test("bindListener leaves a path that is not a socket alone", async () => {
  const path = join(temporaryDirectory(), "config.yaml");
  writeFileSync(path, "listen: 127.0.0.1:1\n");

  const error = await bindError({ kind: "unix", path });

  expect(error.message).toBe(`listen on unix:${path} failed: the path exists and is not a socket; remove it or pick another path`);
  expect(existsSync(path)).toBe(true);
});

test.each([
  ["a missing folder", () => ({ kind: "unix", path: join(temporaryDirectory(), "missing", "x.sock") }) as const, /the folder .*\/missing does not exist; create it or pick another path \(ENOENT\)$/],
  ["a Unix path over 107 bytes", () => ({ kind: "unix", path: join(temporaryDirectory(), `${"a".repeat(110)}.sock`) }) as const, /the path has \d+ bytes, more than the 107 a Unix socket path can have; use a shorter path$/],
  ["a link-local IPv6 address without its interface", () => ({ kind: "tcp", host: "fe80::1", port: 0 }) as const, /a link-local IPv6 address needs its interface, as in \[fe80::1%eth0\]:0 \(EINVAL\)$/],
])("bindListener explains %s", async (_, address, message) => {
  const error = await bindError(address());

  expect(error.message).toMatch(message);
});

test("describeListenError explains a host name that did not resolve", () => {
  // Bun 1.4.4's error for a name that does not resolve, built here: a real lookup would send a
  // DNS query off this machine.
  const error = new Error("Failed to listen at lb.example.invalid");

  expect(describeListenError(error, { kind: "tcp", host: "lb.example.invalid", port: 7443 })).toBe(
    "Failed to listen at lb.example.invalid: the host name did not resolve to an address of this machine; use an IP address such as 127.0.0.1, or a name in /etc/hosts",
  );
  expect(describeListenError(new Error("Failed to listen at 127.0.0.1"), { kind: "tcp", host: "127.0.0.1", port: 7443 })).toBe("Failed to listen at 127.0.0.1");
});

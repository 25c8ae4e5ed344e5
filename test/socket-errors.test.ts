import { expect, test } from "bun:test";
import { join } from "node:path";
import { describeSocketError, withoutRuntimeHints } from "../src/socket-errors.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";

const dir = tempDirectory("tinylb-socket-errors-");

/** Returns the error a real Bun.connect rejects with. */
async function connectError(options: { hostname: string; port: number } | { unix: string }): Promise<unknown> {
  const socket = { data() {} };
  try {
    const connected = "unix" in options ? await Bun.connect({ unix: options.unix, socket }) : await Bun.connect({ ...options, socket });
    connected.terminate();
  } catch (error) {
    return error;
  }
  throw new Error(`connect to ${JSON.stringify(options)} succeeded`);
}

test("describeSocketError words a refused connect", async () => {
  // Nothing listens on port 1 of loopback on this machine, as in the other tests that use it.
  const error = await connectError({ hostname: "127.0.0.1", port: 1 });

  expect(describeSocketError(error)).toBe("connection refused (ECONNREFUSED)");
});

test("describeSocketError words a missing Unix socket", async () => {
  const error = await connectError({ unix: join(dir, "absent.sock") });

  expect(describeSocketError(error)).toBe("no socket exists at that path (ENOENT)");
});

test.each([
  ["ETIMEDOUT", "connection timed out (ETIMEDOUT)"],
  ["EHOSTUNREACH", "no route to the host (EHOSTUNREACH)"],
  ["ENETUNREACH", "the network is unreachable (ENETUNREACH)"],
  ["ECONNRESET", "connection reset by the peer (ECONNRESET)"],
  ["EPIPE", "the peer closed the connection while data was being sent (EPIPE)"],
  ["EACCES", "permission denied (EACCES)"],
  ["EWHATEVER", "Failed to connect (EWHATEVER)"],
])("describeSocketError words %s", (code, words) => {
  const error = Object.assign(new Error("Failed to connect"), { code });

  expect(describeSocketError(error)).toBe(words);
});

// A real failed lookup would send a DNS query to the machine's resolver, off loopback, so these
// errors are built by hand in the shape Bun logs: "getaddrinfo ENOTFOUND nonexistent.invalid".
test.each([
  [{ code: "ENOTFOUND", hostname: "nonexistent.invalid" }, 'host name "nonexistent.invalid" not found (ENOTFOUND)'],
  [{ code: "ENOTFOUND" }, 'host name "nonexistent.invalid" not found (ENOTFOUND)'],
  [{ code: "EAI_AGAIN", hostname: "api.internal" }, 'the lookup of host name "api.internal" failed temporarily (EAI_AGAIN)'],
])("describeSocketError names the host of a failed lookup %j", (fields, words) => {
  const error = Object.assign(new Error(`getaddrinfo ${fields.code} nonexistent.invalid`), fields);

  expect(describeSocketError(error)).toBe(words);
});

test.each([
  ["ECONNRESET: The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()", "ECONNRESET: The socket connection was closed unexpectedly"],
  ["ECONNREFUSED: Unable to connect. Is the computer able to access the url?", "ECONNREFUSED: Unable to connect."],
  ["connection refused (ECONNREFUSED)", "connection refused (ECONNREFUSED)"],
])("withoutRuntimeHints drops Bun's fetch hints from %p", (message, expected) => {
  expect(withoutRuntimeHints(message)).toBe(expected);
});

test("binary words dial and probe failures plainly", async () => {
  // Debug level: a dial to a backend the probe already made unhealthy is logged only there.
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:1", "--probe", "tcp", "--probe-interval", "100ms", "--log-level", "debug"]);

  await tinylb.waitForLog("backend is unhealthy");
  await tinylb.waitForLog(/listening .*listener=127\.0\.0\.1:\d+/);
  const port = Number(/listening .*listener=127\.0\.0\.1:(\d+)/.exec(tinylb.stderr)![1]);
  // Every backend is unhealthy, so the client is still tried against "a" and its dial fails.
  const client = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
  await tinylb.waitForLog(/dial failed .*backend=a /);
  client.terminate();

  expect(tinylb.stderr).toMatch(/DEBUG dial failed .*backend=a target=127\.0\.0\.1:1 err="connection refused \(ECONNREFUSED\)"/);
  expect(tinylb.stderr).toContain("tcp connect failed 3 times in a row: connection refused (ECONNREFUSED)");
  expect(tinylb.stderr).not.toContain("Failed to connect");
});

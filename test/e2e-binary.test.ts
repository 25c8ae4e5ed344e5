/**
 * End-to-end tests of the compiled `dist/tinylb` with real peer programs: curl and
 * `openssl s_server` (HTTPS), plus loopback backends in this process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { Peer, PeerListener, patternBytes, sha256 } from "./support/peers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

/** Backstop for one test; the waits inside carry the real deadlines. */
const TEST_TIMEOUT_MS = 120_000;
const MIB = 1024 * 1024;

const directory = tempDirectory("tinylb-e2e-");
const badConfig = join(directory, "bad-start.yaml");
writeFileSync(badConfig, "listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: nowhere }\n");

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

async function startTinylb(args: string[]): Promise<{ tinylb: TinylbProcess; port: number }> {
  const tinylb = TinylbProcess.start(args);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr) };
}

/** Runs a program to completion, returning its exit code, stdout and stderr. */
async function run(argv: string[], cwd = directory): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(argv, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);

  return { exitCode, stdout, stderr };
}

/** One `openssl s_server -WWW` serving the files of its own folder over HTTPS with a self-signed certificate. */
interface HttpsServer {
  id: string;
  port: number;
  root: string;
  certificate: string;
  child: Subprocess<"ignore", "pipe", "pipe">;
}

async function startHttpsServer(id: string): Promise<HttpsServer> {
  const root = join(directory, id);
  mkdirSync(root, { recursive: true });
  const certificate = join(root, "cert.pem");
  const key = join(root, "key.pem");
  const made = await run([
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", certificate, "-days", "1", "-subj", `/CN=${id}`, "-addext", "subjectAltName=IP:127.0.0.1",
  ]);
  expect(made.exitCode).toBe(0);
  writeFileSync(join(root, "id.txt"), `hello from ${id}\n`);

  const child = Bun.spawn(["openssl", "s_server", "-WWW", "-accept", "127.0.0.1:0", "-cert", certificate, "-key", key], {
    cwd: root,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanup.push(async () => {
    child.kill();
    await child.exited;
  });

  let output = "";
  const reader = child.stdout.getReader();
  await within(`openssl s_server ${id} to report its port`, (async () => {
    while (!/ACCEPT 127\.0\.0\.1:\d+/.test(output)) {
      const { value, done } = await reader.read();
      if (done) {
        throw new Error(`openssl s_server ${id} exited: ${output}`);
      }
      output += new TextDecoder().decode(value);
    }
  })());
  // Keep reading so that a full pipe never blocks the server.
  void (async () => {
    while (!(await reader.read()).done) {
      // Discard the access log.
    }
  })();
  const port = Number(/ACCEPT 127\.0\.0\.1:(\d+)/.exec(output)![1]);

  return { id, port, root, certificate, child };
}

describe("dist/tinylb with HTTPS backends", () => {
  let servers: HttpsServer[] = [];
  let bundle = "";

  beforeAll(async () => {
    servers = [];
    for (const id of ["https-1", "https-2", "https-3"]) {
      servers.push(await startHttpsServer(id));
    }
    // The servers were started inside beforeAll, so they outlive each test's cleanup.
    const started = cleanup.splice(0);
    afterAllSteps.push(...started);
    bundle = join(directory, "bundle.pem");
    writeFileSync(bundle, servers.map((server) => readFileSync(server.certificate, "utf8")).join(""));
  });
  const afterAllSteps: (() => unknown)[] = [];
  afterAll(async () => {
    for (const step of afterAllSteps.reverse()) {
      await step();
    }
  });

  function backendFlags(): string[] {
    return servers.flatMap((server) => ["--backend", `${server.id}=127.0.0.1:${server.port}`]);
  }

  test("curl over HTTPS sees the round-robin", async () => {
    const { port } = await startTinylb(["--listen", "127.0.0.1:0", ...backendFlags()]);

    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) {
      const curl = await run(["curl", "-sS", "--max-time", "20", "--cacert", bundle, `https://127.0.0.1:${port}/id.txt`]);
      expect(curl.stderr).toBe("");
      expect(curl.exitCode).toBe(0);
      bodies.push(curl.stdout.trim());
    }

    expect(bodies).toEqual(["hello from https-1", "hello from https-2", "hello from https-3", "hello from https-1", "hello from https-2", "hello from https-3"]);
  }, TEST_TIMEOUT_MS);

  test("TLS handshakes pass through untouched", async () => {
    const { port } = await startTinylb(["--listen", "127.0.0.1:0", ...backendFlags()]);

    // Each handshake must present the certificate of the backend whose turn it is.
    const subjects: string[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await run(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-CAfile", bundle, "-verify_return_error", "-brief"], directory);
      expect(client.exitCode).toBe(0);
      subjects.push(/Peer certificate: CN\s*=\s*(\S+)/.exec(client.stderr)?.[1] ?? client.stderr);
    }

    expect(subjects).toEqual(["https-1", "https-2", "https-3"]);
  }, TEST_TIMEOUT_MS);

  test("100 MiB download keeps its checksum", async () => {
    const file = patternBytes(100 * MIB, 100);
    for (const server of servers) {
      writeFileSync(join(server.root, "big.bin"), file);
    }
    const { port } = await startTinylb(["--listen", "127.0.0.1:0", ...backendFlags()]);

    const curl = Bun.spawn(["curl", "-sS", "--max-time", "100", "--cacert", bundle, `https://127.0.0.1:${port}/big.bin`], { stdout: "pipe", stderr: "pipe" });
    const hasher = new Bun.CryptoHasher("sha256");
    let received = 0;
    for await (const chunk of curl.stdout) {
      hasher.update(chunk);
      received += chunk.byteLength;
    }

    expect(await curl.exited).toBe(0);
    expect(received).toBe(file.byteLength);
    expect(hasher.digest("hex")).toBe(sha256(file));
  }, TEST_TIMEOUT_MS);
});

describe("dist/tinylb reloads", () => {
  test("SIGHUP with a changed file removes a backend and kills its connections", async () => {
    const a = TestBackend.echo("a");
    const b = TestBackend.echo("b");
    cleanup.push(() => a.stop(), () => b.stop());
    const config = join(directory, "reload.yaml");
    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "${a.target}" }\n  - { id: b, target: "${b.target}" }\n`);
    const { tinylb, port } = await startTinylb(["--config", config]);
    const toA = await TestClient.connect(port);
    const toB = await TestClient.connect(port);
    cleanup.push(() => toA.socket.terminate(), () => toB.socket.terminate());
    await waitFor("greetings", () => toA.firstLine === "a" && toB.firstLine === "b");

    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - { id: b, target: "${b.target}" }\n`);
    tinylb.signal("SIGHUP");

    await waitFor("the client of a to be closed", () => toA.closed, 2000);
    await tinylb.waitForLog(/closed connections of removed target .*backend=a .*closed=1/);
    await tinylb.waitForLog(`backends="b=${b.target}"`);
    toB.socket.write("still served\n");
    await waitFor("echo through b", () => toB.received.includes("still served"));
    expect(toB.closed).toBe(false);
    expect(a.open.size).toBe(0);
  }, TEST_TIMEOUT_MS);

  test("a bad file is rejected and the old set keeps serving", async () => {
    const a = TestBackend.echo("a");
    const b = TestBackend.echo("b");
    cleanup.push(() => a.stop(), () => b.stop());
    const config = join(directory, "bad-reload.yaml");
    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "${a.target}" }\n  - { id: b, target: "${b.target}" }\n`);
    const { tinylb, port } = await startTinylb(["--config", config]);
    const kept = await TestClient.connect(port);
    cleanup.push(() => kept.socket.terminate());
    await waitFor("greeting", () => kept.firstLine === "a");

    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - { id: b, target: "${b.target}" }\n  - { id: c, target: "127.0.0.1" }\n`);
    tinylb.signal("SIGHUP");

    await tinylb.waitForLog("config reload rejected");
    const line = tinylb.stderr.split("\n").find((text) => text.includes("config reload rejected"))!;
    expect(line).toContain(config);
    expect(line).toContain("backends[1]");
    expect(line).toContain('invalid address \\"127.0.0.1\\"');
    expect(line).toContain("expected host:port");

    // The old set (a and b) still serves, in rotation, and the open connection is untouched.
    const greetings: string[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await TestClient.connect(port);
      await waitFor("greeting", () => client.firstLine !== "");
      greetings.push(client.firstLine);
      client.close();
    }
    expect(greetings.sort()).toEqual(["a", "b"]);
    kept.socket.write("untouched\n");
    await waitFor("echo on the old connection", () => kept.received.includes("untouched"));
    expect(tinylb.process.exitCode).toBeNull();
  }, TEST_TIMEOUT_MS);
});

describe("dist/tinylb process", () => {
  test.each(["SIGTERM", "SIGINT"] as const)("%s drains open connections and exits 0", async (signal) => {
    const a = TestBackend.echo("a");
    cleanup.push(() => a.stop());
    const { tinylb, port } = await startTinylb(["--listen", "127.0.0.1:0", "--backend", `a=${a.target}`, "--shutdown-grace", "1m"]);
    const client = await TestClient.connect(port);
    cleanup.push(() => client.socket.terminate());
    await waitFor("greeting", () => client.firstLine === "a");

    tinylb.signal(signal);
    await tinylb.waitForLog(`${signal} received; draining`);
    client.socket.write("during the drain\n");
    await waitFor("echo during the drain", () => client.received.includes("during the drain"));
    expect(tinylb.process.exitCode).toBeNull();

    // The last connection finishing ends the drain long before the one-minute grace period.
    client.close();
    expect(await within("tinylb to exit", tinylb.process.exited, 15_000)).toBe(0);
    expect(tinylb.stderr).toMatch(/tinylb stopped .*closedAtDeadline=0/);
  }, TEST_TIMEOUT_MS);

  test("SIGTERM closes what is left at the end of the grace period", async () => {
    const a = TestBackend.echo("a");
    cleanup.push(() => a.stop());
    const { tinylb, port } = await startTinylb(["--listen", "127.0.0.1:0", "--backend", `a=${a.target}`, "--shutdown-grace", "500ms"]);
    const client = await TestClient.connect(port);
    cleanup.push(() => client.socket.terminate());
    await waitFor("greeting", () => client.firstLine === "a");

    tinylb.signal("SIGTERM");

    expect(await within("tinylb to exit", tinylb.process.exited, 15_000)).toBe(0);
    await waitFor("the lingering client to be closed", () => client.closed);
    expect(tinylb.stderr).toMatch(/tinylb stopped .*closedAtDeadline=1/);
  }, TEST_TIMEOUT_MS);

  test("a second tinylb on the same port exits 1 naming the address", async () => {
    const { port } = await startTinylb(["--listen", "127.0.0.1:0"]);

    const second = TinylbProcess.start(["--listen", `127.0.0.1:${port}`]);
    cleanup.push(() => second[Symbol.asyncDispose]());

    expect(await within("the second tinylb to exit", second.process.exited, 15_000)).toBe(1);
    expect(second.stderr).toContain(`listen on 127.0.0.1:${port} failed`);
    expect(second.stderr).toContain("EADDRINUSE");
  }, TEST_TIMEOUT_MS);

  test("a failed start logs its error as JSON with JSON logs", async () => {
    const { port } = await startTinylb(["--listen", "127.0.0.1:0"]);

    const second = TinylbProcess.start(["--listen", `127.0.0.1:${port}`, "--log-format", "json"]);
    cleanup.push(() => second[Symbol.asyncDispose]());

    expect(await within("the second tinylb to exit", second.process.exited, 15_000)).toBe(1);
    const last = JSON.parse(second.stderr.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({ level: "error", msg: "start failed", component: "main", exitCode: 1 });
    expect(last.err).toContain(`listen on 127.0.0.1:${port} failed`);
  }, TEST_TIMEOUT_MS);

  test("an invalid config file with logFormat json logs its error as JSON", async () => {
    const config = join(directory, "invalid-json-log.yaml");
    const missingCa = join(directory, "missing-ca.crt");
    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - { id: b1, target: 127.0.0.1:9 }\nlogFormat: json\nprobe: { kind: https, tls: { ca: ${missingCa} } }\n`);

    const result = await run([BINARY, "--config", config]);

    expect(result.exitCode).toBe(2);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: "error", msg: "start failed", component: "main", exitCode: 2 });
    expect(line.err).toContain(`probe.tls.ca: cannot read ${missingCa}`);
  }, TEST_TIMEOUT_MS);

  test("a config file with an invalid logFormat logs its error as text", async () => {
    const config = join(directory, "invalid-log-format.yaml");
    writeFileSync(config, "listen: 127.0.0.1:0\nbackends:\n  - { id: b1, target: 127.0.0.1:9 }\nlogFormat: jsonl\n");

    const result = await run([BINARY, "--config", config]);

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toStartWith(`tinylb: invalid config ${config}: logFormat`);
  }, TEST_TIMEOUT_MS);

  test.each([
    [["--listen", "127.0.0.1"], "--listen: invalid address"],
    [["--bogus"], "unknown flag --bogus"],
    [["--listen", "127.0.0.1:0", "--backend", "nonsense"], '--backend "nonsense": expected ID=TARGET'],
    [["--backend", "a=127.0.0.1:1"], "no listen address"],
    [["--config", join(directory, "absent.yaml")], "the file does not exist"],
    [["--config", badConfig], `invalid config ${badConfig}: backends[0]: invalid target for backend "a": invalid address "nowhere"`],
  ])("bad command line %p exits 2 with one line", async (args, message) => {
    const result = await run([join(import.meta.dir, "..", "dist", "tinylb"), ...args]);

    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain(message);
  }, TEST_TIMEOUT_MS);

  test("memory stays bounded with a client that does not read", async () => {
    const backend = new PeerListener();
    cleanup.push(() => backend.stop());
    const { tinylb, port } = await startTinylb(["--listen", "127.0.0.1:0", "--backend", `only=${backend.target}`]);
    const baseline = residentBytes(tinylb.pid);

    const client = await Peer.connect(port);
    cleanup.push(() => client.socket.terminate());
    client.keepText = false;
    client.socket.pause();
    const upstream = await backend.next();
    const download = patternBytes(256 * MIB, 9);
    void upstream.send(download, { shutdown: true });

    let last = -1;
    await waitFor("the backend's writes to stall", async () => {
      const before = upstream.sent;
      await Bun.sleep(200);
      const stalled = upstream.sent === before && before === last;
      last = before;

      return stalled;
    }, 30_000);
    const growth = residentBytes(tinylb.pid) - baseline;

    // Kernel buffers hold most of what was sent; tinylb itself queues at most one read.
    expect(upstream.sent).toBeLessThan(64 * MIB);
    expect(growth).toBeLessThan(32 * MIB);

    client.socket.resume();
    await waitFor("the client to read all 256 MiB", () => client.ended, 90_000);
    expect(client.receivedAtEnd).toBe(download.byteLength);
    expect(client.digest()).toBe(sha256(download));
    expect(residentBytes(tinylb.pid) - baseline).toBeLessThan(64 * MIB);
  }, TEST_TIMEOUT_MS);
});

/** Resident set size of a process, from /proc. */
function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = /VmRSS:\s+(\d+) kB/.exec(status);
  if (kib === null) {
    throw new Error(`no VmRSS in /proc/${pid}/status`);
  }

  return Number(kib[1]) * 1024;
}

describe("dist/tinylb demo", () => {
  /**
   * Starts the demo with the test's folder as TMPDIR, so that the admin socket folder of a demo
   * that a test kills with SIGKILL, which the demo cannot remove, is not left in /tmp.
   */
  const startDemo = (args: string[], cwd?: string): TinylbProcess =>
    TinylbProcess.start(["demo", ...args], { cwd, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: directory } });

  test("serves three greeting backends in turn and stops on SIGINT", async () => {
    const demo = startDemo(["--listen", "127.0.0.1:0"]);
    cleanup.push(() => demo[Symbol.asyncDispose]());
    await waitFor("the demo's instructions", () => demo.stdout.includes("Press Ctrl-C to stop."));
    const url = /curl -s (http:\/\/127\.0\.0\.1:\d+\/)/.exec(demo.stdout)?.[1];
    expect(url).toBeDefined();

    const replies: string[] = [];
    for (let i = 0; i < 4; i++) {
      const curl = await run(["curl", "-sS", "--max-time", "20", url!]);
      expect(curl.exitCode).toBe(0);
      replies.push(curl.stdout.trim());
    }
    expect(replies).toEqual(["hello from demo-1", "hello from demo-2", "hello from demo-3", "hello from demo-1"]);

    demo.signal("SIGINT");
    expect(await within("the demo to exit", demo.process.exited, 15_000)).toBe(0);
    expect(demo.stdout).toContain("demo stopped");
  }, TEST_TIMEOUT_MS);

  test("printed admin commands change the rotation", async () => {
    const root = join(import.meta.dir, "..");
    const demo = startDemo(["--listen", "127.0.0.1:0"], root);
    cleanup.push(() => demo[Symbol.asyncDispose]());
    await waitFor("the demo's instructions", () => demo.stdout.includes("Press Ctrl-C to stop."));
    const url = /curl -s (http:\/\/127\.0\.0\.1:\d+\/)/.exec(demo.stdout)?.[1];
    const commands = demo.stdout.split("\n").filter((line) => line.startsWith("  ./dist/tinylb ")).map((line) => line.trim());
    const socket = /--admin unix:(\S+)/.exec(demo.stdout)?.[1];
    expect(url).toBeDefined();
    expect(socket).toBeDefined();
    expect(socket!.startsWith(`${directory}/tinylb-demo-`)).toBe(true);
    expect(commands).toEqual([
      `./dist/tinylb status --admin unix:${socket}`,
      expect.stringMatching(new RegExp(`^\\./dist/tinylb add demo-4 127\\.0\\.0\\.1:\\d+ --admin unix:${socket}$`)),
      `./dist/tinylb remove demo-1 --admin unix:${socket}`,
    ]);
    const [status, add, remove] = commands as [string, string, string];
    const replies = async (count: number): Promise<string[]> => {
      const lines: string[] = [];
      for (let i = 0; i < count; i++) {
        const curl = await run(["curl", "-sS", "--max-time", "20", url!]);
        expect(curl.exitCode).toBe(0);
        lines.push(curl.stdout.trim());
      }

      return lines.sort();
    };
    // Each command runs through a shell, from the folder where `npm run demo` starts the demo.
    const shell = (command: string) => run(["sh", "-c", command], root);

    const listed = await shell(status);
    expect(listed.exitCode).toBe(0);
    expect(listed.stdout).toMatch(/^demo-1 .* api /m);
    expect(listed.stdout).not.toContain("demo-4");
    expect(await replies(3)).toEqual(["hello from demo-1", "hello from demo-2", "hello from demo-3"]);

    const added = await shell(add);
    expect(added.exitCode).toBe(0);
    expect(added.stdout).toContain('added backend "demo-4"');
    // Sorted: one full turn over demo-1, demo-2, demo-3 and demo-4.
    expect(await replies(4)).toEqual(["hello from demo-1", "hello from demo-2", "hello from demo-3", "hello from demo-4"]);

    const removed = await shell(remove);
    expect(removed.exitCode).toBe(0);
    expect(removed.stdout).toContain('removed backend "demo-1"');
    expect(await replies(3)).toEqual(["hello from demo-2", "hello from demo-3", "hello from demo-4"]);

    demo.signal("SIGINT");
    expect(await within("the demo to exit", demo.process.exited, 15_000)).toBe(0);
    expect(demo.stdout).toContain("demo stopped");
    expect(existsSync(dirname(socket!))).toBe(false);
  }, TEST_TIMEOUT_MS);

  test("names the IPv6 listen address in its hints", async () => {
    const demo = startDemo(["--listen", "[::1]:0"]);
    cleanup.push(() => demo[Symbol.asyncDispose]());
    await waitFor("the demo's instructions", () => demo.stdout.includes("Press Ctrl-C to stop."));
    const port = /on \[::1\]:(\d+)/.exec(demo.stdout)?.[1];

    expect(port).toBeDefined();
    expect(demo.stdout).toContain(`curl -s http://[::1]:${port}/`);
    expect(demo.stdout).toContain(`| nc ::1 ${port}\n`);
    const curl = await run(["curl", "-sS", "-g", "--max-time", "20", `http://[::1]:${port}/`]);
    expect(curl.stdout).toContain("hello from demo-1");
  }, TEST_TIMEOUT_MS);

  test("suggests another address when its port is taken", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    cleanup.push(() => taken.stop(true));

    const temp = join(directory, "taken-port");
    mkdirSync(temp);

    const demo = await run(["env", `TMPDIR=${temp}`, BINARY, "demo", "--listen", `127.0.0.1:${taken.port}`]);

    expect(demo.stderr).toContain("pick another address with --listen, such as: tinylb demo --listen 127.0.0.1:7171 (or npm run demo -- --listen 127.0.0.1:7171)");
    expect(demo.stderr.split("pick another address").length - 1).toBe(1);
    expect(demo.exitCode).toBe(1);
    // The failed start removed the admin socket folder it made.
    expect(readdirSync(temp)).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

import type { Subprocess } from "bun";
import { trackChild } from "./child-processes.ts";
import { readLines } from "./line-reader.ts";
import { waitFor } from "./wait.ts";

/**
 * Python program behind `ServiceManager`. It does what systemd does for a socket unit with
 * Accept=no and its service: it listens on 127.0.0.1 (the kernel picks the port) and keeps the
 * socket open, and each `start` runs the service with the socket as fd 3, LISTEN_FDS=1 and
 * LISTEN_PID set to the service's pid. `stop` sends SIGTERM and waits for the exit, as
 * `systemctl stop` does (SIGKILL after 30 s).
 */
const PROGRAM = `
import json, os, signal, socket, sys, time
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
print("port", listener.getsockname()[1], flush=True)
child = None

def start(command):
    log = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    pid = os.fork()
    if pid == 0:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if listener.fileno() == 3:
            os.set_inheritable(3, True)
        else:
            os.dup2(listener.fileno(), 3)
        env = dict(command["env"], LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
        os.execve(command["argv"][0], command["argv"], env)
    os.close(log)
    return pid

def stop(pid):
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9

for line in sys.stdin:
    command = json.loads(line)
    if command["do"] == "start":
        child = start(command)
        print("started", child, flush=True)
    elif command["do"] == "stop" and child is not None:
        print("exited", stop(child), flush=True)
        child = None
if child is not None:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
`;

/**
 * A stand-in for systemd's socket activation across restarts, run by python3. No systemd
 * service manager can run in the test environment, because it needs to be PID 1 or a user
 * session with D-Bus. `systemd-socket-activate` replaces itself with the one program it
 * starts, so it cannot restart the service while it keeps the socket.
 */
export class ServiceManager {
  /** The port of the socket the manager keeps open and passes to every start. */
  readonly port: number;
  readonly #child: Subprocess<"pipe", "pipe", "inherit">;
  readonly #replies: string[];

  private constructor(child: Subprocess<"pipe", "pipe", "inherit">, port: number, replies: string[]) {
    this.#child = child;
    this.port = port;
    this.#replies = replies;
  }

  /** Starts the manager and waits until its socket listens. */
  static async start(): Promise<ServiceManager> {
    const child = trackChild(Bun.spawn(["python3", "-c", PROGRAM], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }));
    const replies: string[] = [];
    void readLines(child.stdout, (line) => replies.push(line));
    await waitFor("the service manager to report its port", () => replies.length > 0);
    const port = Number(replies.shift()!.slice("port ".length));

    return new ServiceManager(child, port, replies);
  }

  /** Starts `argv` with the socket as fd 3, its stdout and stderr appended to `log`. Returns its pid. */
  async startService(argv: string[], log: string, env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" }): Promise<number> {
    const reply = await this.#request({ do: "start", argv, log, env }, "started ", 10_000);

    return Number(reply.slice("started ".length));
  }

  /** Sends SIGTERM to the service and resolves with its exit code once it has exited. */
  async stopService(timeoutMs = 40_000): Promise<number> {
    const reply = await this.#request({ do: "stop" }, "exited ", timeoutMs);

    return Number(reply.slice("exited ".length));
  }

  async #request(command: object, replyPrefix: string, timeoutMs: number): Promise<string> {
    this.#child.stdin.write(JSON.stringify(command) + "\n");
    this.#child.stdin.flush();
    await waitFor(`the service manager to reply "${replyPrefix.trim()}"`, () => this.#replies.length > 0, timeoutMs);
    const reply = this.#replies.shift()!;
    if (!reply.startsWith(replyPrefix)) {
      throw new Error(`the service manager replied "${reply}", expected "${replyPrefix.trim()} ..."`);
    }

    return reply;
  }

  /** Closes the manager's stdin, which kills a service still running, and waits for it to exit. */
  async stop(): Promise<void> {
    this.#child.stdin.end();
    await this.#child.exited;
  }
}

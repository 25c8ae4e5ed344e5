import { describe, expect, test } from "bun:test";
import { AddressError } from "../src/address.ts";
import { HELP, parseArgs, UsageError } from "../src/cli.ts";
import { BINARY } from "./support/tinylb-process.ts";
import { Fuzzer } from "./support/fuzz.ts";

/** Every long flag the help text lists, with its metavariable (undefined for a switch). */
const FLAGS: [flag: string, metavar: string | undefined][] = [...HELP.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)(?: ([A-Z]+))?/gm)].map((match) => [match[1]!, match[2]]);

/** Values that no flag of the metavariable's kind may accept. */
const INVALID_VALUES: Record<string, string[]> = {
  DUR: ["", "abc", "5", "-1s", "1.2.3s", "1e400ms", `${"9".repeat(400)}s`, "５s", "1 s", "NaNs"],
  N: ["", "-1", "1.5", "abc", "1e3", "99999999999", " 1", "0x10", "Infinity"],
  ADDR: ["", "nohost", "127.0.0.1:99999", "127.0.0.1:-1", "[::1", "unix:", "host:port", "127.0.0.1:"],
  ID: ["", "noequals", "=127.0.0.1:1", "a=", "a=nohost", "a=127.0.0.1:99999"],
  FORMAT: ["", "nope", "TEXT", "json "],
  LEVEL: ["", "nope", "INFO", "trace"],
  POLICY: ["", "nope", "CLOSE"],
  KIND: ["", "nope", "udp"],
  MODE: ["", "nope", "LEASTCONN", "round-robin"],
  FILE: [""],
  NAME: [""],
  PATH: [""],
};

function expectRejected(argv: string[], flag: string): void {
  let thrown: unknown;
  try {
    parseArgs(argv);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${JSON.stringify(argv)} was accepted`).toBeDefined();
  const known = thrown instanceof UsageError || thrown instanceof AddressError;
  expect(known, `${JSON.stringify(argv)} threw ${String(thrown)}`).toBe(true);
  expect((thrown as Error).message).toContain(flag);
}

describe("command line", () => {
  test("help lists the flags under test", () => {
    expect(FLAGS.length).toBeGreaterThan(20);
    expect(FLAGS.map(([flag]) => flag)).toContain("--max-connections");
    for (const [flag, metavar] of FLAGS) {
      expect(metavar === undefined || INVALID_VALUES[metavar] !== undefined, `no invalid values for ${flag} ${metavar}`).toBe(true);
    }
  });

  const valueFlags = FLAGS.filter(([, metavar]) => metavar !== undefined);
  test.each(valueFlags)("%s rejects invalid values", (flag, metavar) => {
    for (const value of INVALID_VALUES[metavar!]!) {
      expectRejected([flag, value], flag);
      expectRejected([`${flag}=${value}`], flag);
    }
  });

  test.each(valueFlags)("%s without a value is rejected", (flag) => {
    expectRejected([flag], flag);
  });

  test("unknown flags are rejected", () => {
    for (const flag of ["--listen-address", "--max-connection", "-x", "--", "---listen", "--LISTEN"]) {
      expectRejected([flag, "127.0.0.1:1"], flag);
    }
  });

  test("random argument lists never throw anything but a usage error", () => {
    const fuzz = new Fuzzer(0x5eed);
    const pieces = ["", "=", ":", "0", "-1", "1s", "999999999999999999999", "127.0.0.1:1", "unix:/tmp/x", "a=127.0.0.1:1", "\u0000", "\uFFFD", "é", "%s", "${x}", "../../etc/passwd"];
    const randomValue = (): string => {
      const length = Math.floor(fuzz.random() * 4);

      return Array.from({ length }, () => fuzz.pick(pieces)).join("");
    };

    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const argv = Array.from({ length: 1 + Math.floor(fuzz.random() * 4) }, () => (fuzz.random() < 0.6 ? fuzz.pick(FLAGS)[0] : randomValue()));
      try {
        parseArgs(argv);
        accepted++;
      } catch (error) {
        const known = error instanceof UsageError || error instanceof AddressError;
        expect(known, `${JSON.stringify(argv)} threw ${String(error)}`).toBe(true);
      }
    }
    // Some random lists are valid; most are not.
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(3000);
  });

  test.each(valueFlags)("tinylb %s with an invalid value exits 2", async (flag, metavar) => {
    const value = INVALID_VALUES[metavar!]![1] ?? "";
    const child = Bun.spawn([BINARY, "--listen", "127.0.0.1:0", flag, value, "--admin", "off"], { stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(code).toBe(2);
    expect(stderr.trim().split("\n").length).toBe(1);
    expect(stderr).toStartWith("tinylb: ");
    expect(stderr).toContain(flag);
  });
});

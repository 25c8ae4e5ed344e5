import { describe, expect, test } from "bun:test";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfigFile, validateConfig } from "../src/config.ts";
import { EchoBackend, FaultProcess } from "./support/fault-peers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";
import { Fuzzer } from "./support/fuzz.ts";

const folder = tempDirectory("tinylb-config-fuzz-");

/** A valid config that sets every basic key. */
const BASE = {
  listen: ["127.0.0.1:7443", "[::1]:7443"],
  backends: [
    { id: "api-1", target: "127.0.0.1:6443" },
    { id: "api-2", target: "127.0.0.1:6444" },
    { id: "api-3", target: "unix:/run/api.sock" },
  ],
  connectTimeout: "3s",
  keepalive: "30s",
  shutdownGrace: "10s",
  maxConnections: 1000,
  maxConnectionsPerBackend: 100,
  logLevel: "info",
  logFormat: "text",
};

/** Renders BASE-shaped data as TOML: top-level keys, then one [[backends]] table per backend. */
function toToml(config: typeof BASE): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (key !== "backends") {
      lines.push(`${key} = ${JSON.stringify(value)}`);
    }
  }
  for (const backend of config.backends) {
    lines.push("", "[[backends]]", `id = ${JSON.stringify(backend.id)}`, `target = ${JSON.stringify(backend.target)}`);
  }

  return lines.join("\n") + "\n";
}

function toYaml(config: typeof BASE): string {
  // JSON is YAML 1.2 flow style; block style covers the other parser paths.
  const lines: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (Array.isArray(value)) {
      lines.push(`${key}:`);
      for (const item of value) {
        lines.push(typeof item === "object" ? `  - id: ${item.id}\n    target: "${item.target}"` : `  - "${item}"`);
      }
    } else {
      lines.push(`${key}: ${typeof value === "string" ? `"${value}"` : value}`);
    }
  }

  return lines.join("\n") + "\n";
}

const RENDER: Record<string, (config: typeof BASE) => string> = {
  json: (config) => JSON.stringify(config, null, 2),
  yaml: toYaml,
  toml: toToml,
};

const fuzz = new Fuzzer(0xc0ffee);

/** Returns the error loadConfigFile threw, or undefined when the file was valid. */
function loadError(path: string): unknown {
  try {
    loadConfigFile(path);

    return undefined;
  } catch (error) {
    return error;
  }
}

describe("config fuzzing", () => {
  test.each(Object.keys(RENDER))("damaged %s files raise only ConfigError", (format) => {
    const path = join(folder, `damaged.${format}`);
    const original = new TextEncoder().encode(RENDER[format]!(BASE));
    writeFileSync(path, original);
    expect(loadError(path)).toBeUndefined();

    let rejected = 0;
    for (let i = 0; i < 600; i++) {
      const damaged = fuzz.mutateBytes(original);
      writeFileSync(path, damaged);
      const error = loadError(path);
      if (error === undefined) {
        continue;
      }
      rejected++;
      expect(error instanceof ConfigError, `${String(error)} for ${JSON.stringify(new TextDecoder().decode(damaged))}`).toBe(true);
      expect((error as Error).message).toContain(path);
    }
    expect(rejected).toBeGreaterThan(300);
  });

  /** Values of the wrong type or absurd size, each put in place of one field. */
  const BAD_VALUES: unknown[] = [
    null,
    true,
    -1,
    1.5,
    1e308,
    "",
    "x".repeat(100_000),
    `${"9".repeat(500)}s`,
    [],
    {},
    [null],
    { nested: { deeper: [1, 2, 3] } },
    Array.from({ length: 20_000 }, (_, i) => ({ id: `b${i}`, target: "127.0.0.1:1" })),
  ];

  test.each(Object.keys(BASE))("wrong values for %s name the field", (key) => {
    for (const value of BAD_VALUES) {
      const data: Record<string, unknown> = structuredClone(BASE);
      data[key] = value;
      let thrown: unknown;
      try {
        validateConfig("fuzz.json", data);
      } catch (error) {
        thrown = error;
      }
      if (thrown === undefined) {
        // A few values are valid for some keys (an empty backend list, for one).
        continue;
      }
      expect(thrown instanceof ConfigError, `${key} = ${JSON.stringify(value)?.slice(0, 80)} threw ${String(thrown)}`).toBe(true);
      expect((thrown as Error).message, `${key} = ${JSON.stringify(value)?.slice(0, 80)}`).toContain(key);
      expect((thrown as Error).message.length).toBeLessThan(2000);
    }
  });

  test("wrong values inside a backend name the entry", () => {
    for (const field of ["id", "target"]) {
      for (const value of BAD_VALUES.slice(0, 12)) {
        const data = structuredClone(BASE) as Record<string, unknown> & { backends: Record<string, unknown>[] };
        data.backends[1]![field] = value;
        expect(() => validateConfig("fuzz.json", data)).toThrow(ConfigError);
        expect(() => validateConfig("fuzz.json", data)).toThrow("backends[1]");
      }
    }
  });

  test.each([
    ["json", (depth: number) => `{"backends": ${"[".repeat(depth)}${"]".repeat(depth)}}`],
    ["yaml", (depth: number) => `backends: ${"[".repeat(depth)}${"]".repeat(depth)}\n`],
    ["toml", (depth: number) => `backends = ${"[".repeat(depth)}${"]".repeat(depth)}\n`],
  ] as const)("deeply nested %s is rejected", (format, render) => {
    for (const depth of [100, 10_000, 100_000]) {
      const path = join(folder, `nested.${format}`);
      writeFileSync(path, render(depth));
      const error = loadError(path);
      expect(error instanceof ConfigError, `depth ${depth}: ${String(error)}`).toBe(true);
    }
  });

  test("files over the size limit and invalid UTF-8 are rejected", () => {
    const big = join(folder, "big.json");
    writeFileSync(big, JSON.stringify({ ...BASE, padding: "x".repeat(2 * 1024 * 1024) }));
    expect(loadError(big)).toBeInstanceOf(ConfigError);
    expect(String(loadError(big))).toContain("bytes");

    const latin1 = join(folder, "latin1.yaml");
    writeFileSync(latin1, Buffer.from('logLevel: "caf\xe9"\n', "latin1"));
    expect(String(loadError(latin1))).toContain("UTF-8");
  });
});

/** Reads the ids of the running set from the admin API. */
async function runningIds(adminPath: string): Promise<string> {
  const response = await fetch("http://localhost/v1/backends", { unix: adminPath });
  const status = (await response.json()) as { backends: { id: string }[] };

  return status.backends.map((backend) => backend.id).sort().join(",");
}

test("rejected reloads keep the running set whole", async () => {
  const backend = new EchoBackend();
  const configPath = join(folder, "reload.yaml");
  const adminPath = join(folder, "admin.sock");
  const good = (ids: string[]): typeof BASE => ({ ...BASE, listen: ["127.0.0.1:0"], backends: ids.map((id) => ({ id, target: backend.target })) });
  const write = (text: string | Uint8Array): void => {
    writeFileSync(`${configPath}.next`, text);
    renameSync(`${configPath}.next`, configPath);
  };
  write(toYaml(good(["a", "b"])));
  await using tinylb = new FaultProcess(["--config", configPath, "--admin", `unix:${adminPath}`, "--no-watch-config"]);
  try {
    await tinylb.port();
    await waitFor("admin API", async () => (await runningIds(adminPath).catch(() => "")) === "a,b");

    let rejected = 0;
    for (let i = 0; i < 20; i++) {
      // A valid file with a new set, damaged: either the whole new set applies or none of it.
      const ids = [`r${i}-x`, `r${i}-y`, `r${i}-z`];
      const before = await runningIds(adminPath);
      const failuresBefore = tinylb.countLines("config reload rejected");
      write(fuzz.mutateBytes(new TextEncoder().encode(toYaml(good(ids)))));
      tinylb.process.kill("SIGHUP");
      await waitFor("the reload to finish", async () => tinylb.countLines("config reload rejected") > failuresBefore || (await runningIds(adminPath)) !== before, 5000).catch(() => {});
      const after = await runningIds(adminPath);
      if (after === before) {
        rejected++;
      } else {
        // The damage left a valid file: its backends are a subset of the new ids, never mixed with the old set.
        expect(after.split(",").every((id) => id.startsWith(`r${i}-`) || id === "")).toBe(true);
      }
    }
    console.log(`${rejected} of 20 damaged reloads rejected; the others applied whole`);
    expect(rejected).toBeGreaterThan(0);
    expect(tinylb.running).toBe(true);
  } finally {
    backend.stop();
  }
}, 60_000);

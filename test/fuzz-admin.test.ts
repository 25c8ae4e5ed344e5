import { expect, test } from "bun:test";
import { join } from "node:path";
import { EchoBackend, FaultProcess } from "./support/fault-peers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";
import { Fuzzer } from "./support/fuzz.ts";

const folder = tempDirectory("tinylb-admin-fuzz-");

const fuzz = new Fuzzer(0xad317);

interface AdminReply {
  status: number;
  body: { error?: string; field?: string; backends?: { id: string }[] };
}

async function request(adminPath: string, method: string, path: string, body?: string | Uint8Array): Promise<AdminReply> {
  const response = await fetch(`http://localhost${path}`, { unix: adminPath, method, body, headers: { "content-type": "application/json" } });
  const text = await response.text();
  let parsed: AdminReply["body"];
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${path} answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }

  return { status: response.status, body: parsed };
}

async function runningIds(adminPath: string): Promise<string> {
  const reply = await request(adminPath, "GET", "/v1/backends");

  return (reply.body.backends ?? []).map((backend) => backend.id).sort().join(",");
}

/** Checks one rejected request: a 4xx with a JSON error, and the running set untouched. */
async function expectRejected(adminPath: string, reply: AdminReply, before: string, what: string): Promise<void> {
  expect(reply.status, `${what}: ${JSON.stringify(reply.body).slice(0, 200)}`).toBeGreaterThanOrEqual(400);
  expect(reply.status, `${what}: ${JSON.stringify(reply.body).slice(0, 200)}`).toBeLessThan(500);
  expect(typeof reply.body.error, what).toBe("string");
  expect(reply.body.error!.length, what).toBeLessThan(2000);
  expect(await runningIds(adminPath), what).toBe(before);
}

test("admin API rejects fuzzed bodies without a partial apply", async () => {
  const backend = new EchoBackend();
  const adminPath = join(folder, "admin.sock");
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--admin", `unix:${adminPath}`]);
  try {
    await tinylb.port();
    await waitFor("admin API", async () => (await request(adminPath, "GET", "/healthz").catch(() => ({ status: 0 }))).status === 200);
    const valid = (ids: string[]): string => JSON.stringify({ backends: ids.map((id) => ({ id, target: backend.target })) });
    expect((await request(adminPath, "PUT", "/v1/backends", valid(["a", "b"]))).status).toBe(200);

    // Damaged copies of a valid body: each is applied whole or rejected with the set untouched.
    let rejected = 0;
    for (let i = 0; i < 300; i++) {
      const before = await runningIds(adminPath);
      const damaged = fuzz.mutateBytes(new TextEncoder().encode(valid([`f${i}-x`, `f${i}-y`])));
      const reply = await request(adminPath, "PUT", "/v1/backends", damaged);
      const what = `body ${JSON.stringify(new TextDecoder().decode(damaged))}`;
      if (reply.status === 200) {
        // The damage left a valid body, so the running set is exactly the body's set.
        const sent = (JSON.parse(new TextDecoder().decode(damaged)) as { backends: { id: string }[] }).backends;
        expect(await runningIds(adminPath), what).toBe(sent.map((entry) => entry.id).sort().join(","));
      } else {
        rejected++;
        await expectRejected(adminPath, reply, before, what);
      }
    }
    console.log(`${rejected} of 300 damaged bodies rejected; the others applied whole`);
    expect(rejected).toBeGreaterThan(150);

    // Wrong types, huge values and deep nesting, in the set body and in the one-backend body.
    const before = await runningIds(adminPath);
    const bodies: [string, string][] = [
      ["null", "null"],
      ["a number", "42"],
      ["a string", '"backends"'],
      ["backends as an object", '{"backends": {}}'],
      ["backends as a string", '{"backends": "a=127.0.0.1:1"}'],
      ["an entry of the wrong type", '{"backends": [1]}'],
      ["a numeric id", '{"backends": [{"id": 1, "target": "127.0.0.1:1"}]}'],
      ["an unknown key", '{"backends": [], "extra": true}'],
      ["a huge id", JSON.stringify({ backends: [{ id: "x".repeat(100_000), target: "127.0.0.1:1" }] })],
      ["a huge target", JSON.stringify({ backends: [{ id: "x", target: "1".repeat(100_000) }] })],
      ["too many backends", JSON.stringify({ backends: Array.from({ length: 10_001 }, (_, i) => ({ id: `b${i}`, target: "127.0.0.1:1" })) })],
      ["deep nesting", `{"backends": ${"[".repeat(50_000)}${"]".repeat(50_000)}}`],
      ["deep nesting in an entry", `{"backends": [${"[".repeat(5000)}${"]".repeat(5000)}]}`],
      ["deep objects", `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`],
    ];
    for (const [what, body] of bodies) {
      await expectRejected(adminPath, await request(adminPath, "PUT", "/v1/backends", body), before, `PUT /v1/backends with ${what}`);
      await expectRejected(adminPath, await request(adminPath, "PUT", "/v1/backends/a", body), before, `PUT /v1/backends/a with ${what}`);
    }

    const invalidUtf8 = Uint8Array.from([...new TextEncoder().encode('{"backends": [{"id": "caf'), 0xe9, ...new TextEncoder().encode('", "target": "127.0.0.1:1"}]}')]);
    await expectRejected(adminPath, await request(adminPath, "PUT", "/v1/backends", invalidUtf8), before, "invalid UTF-8");
    const oversized = JSON.stringify({ backends: [], padding: "x".repeat(2 * 1024 * 1024) });
    const tooBig = await request(adminPath, "PUT", "/v1/backends", oversized);
    expect(tooBig.status).toBe(413);
    await expectRejected(adminPath, tooBig, before, "a 2 MiB body");

    // Field errors name the field.
    const badTarget = await request(adminPath, "PUT", "/v1/backends", JSON.stringify({ backends: [{ id: "ok", target: "nohost" }] }));
    expect(badTarget.status).toBe(400);
    expect(badTarget.body.field).toBe("backends[0].target");
    expect(tinylb.running).toBe(true);
  } finally {
    backend.stop();
  }
}, 120_000);

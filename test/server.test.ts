import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { Server } from "../src/server.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function startBackends(ids: string[]): TestBackend[] {
  const backends = ids.map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

async function startServer(backends: TestBackend[]): Promise<{ server: Server; port: number }> {
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  server.applySet(new BackendSet(backends.map((backend) => createBackend(backend.id, backend.target))));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0 };
}

async function greeting(port: number): Promise<string> {
  const client = await TestClient.connect(port);
  await waitFor("greeting", () => client.firstLine !== "");
  client.close();

  return client.firstLine;
}

test("Server spreads 20 connections over four backends, five each", async () => {
  const backends = startBackends(["a", "b", "c", "d"]);
  const { server, port } = await startServer(backends);

  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    seen.push(await greeting(port));
  }

  expect(seen.slice(0, 8)).toEqual(["a", "b", "c", "d", "a", "b", "c", "d"]);
  for (const backend of backends) {
    expect(seen.filter((id) => id === backend.id).length).toBe(5);
  }
  await waitFor("pool to empty", () => server.activeCount === 0);
});

test("Server closes a removed backend's connections and keeps the others", async () => {
  const backends = startBackends(["a", "b"]);
  const { server, port } = await startServer(backends);
  const toA = await TestClient.connect(port);
  const toB = await TestClient.connect(port);
  await waitFor("greetings", () => toA.firstLine === "a" && toB.firstLine === "b");

  server.applySet(new BackendSet([createBackend("b", backends[1]!.target)]));

  await waitFor("client of a to see the end", () => toA.ended || toA.closed, 1000);
  toB.socket.write("still here\n");
  await waitFor("echo through b", () => toB.received.includes("still here"));
  expect(toB.closed).toBe(false);
  toB.close();
  await waitFor("pool to empty", () => server.activeCount === 0);
});

import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubernetesApiMock, makeCertificates, removeCertificates, SERVER_NAME, type TestCertificates } from "./support/kubernetes-api-mock.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

// The compiled tinylb with a `kubernetes` config section. No kube-apiserver can run in this
// test environment, so a local HTTPS mock serves the EndpointSlice list and watch wire
// format. The EndpointSlice points back at the mock, so every connection stays on loopback.

/** Per-test deadline: the test starts the binary and waits for several provider steps. */
const E2E_TIMEOUT_MS = 60_000;
const TOKEN = "e2e-token";

let certificates: TestCertificates;

beforeAll(async () => {
  certificates = await makeCertificates();
});

afterAll(() => {
  removeCertificates(certificates);
});

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

async function startMock(): Promise<KubernetesApiMock> {
  const mock = await KubernetesApiMock.start({ certificates, expectedToken: () => TOKEN });
  cleanup.push(() => mock.stop());

  return mock;
}

/** Writes a kubeconfig for `server` with the test CA and a token file; returns its path. */
function writeKubeconfig(server: string): string {
  writeFileSync(join(certificates.dir, "token"), `${TOKEN}\n`);
  const path = join(certificates.dir, "kubeconfig");
  writeFileSync(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "current-context: tinylb",
      "clusters:",
      "  - name: test",
      "    cluster:",
      `      server: ${server}`,
      "      certificate-authority: ca.crt",
      `      tls-server-name: ${SERVER_NAME}`,
      "contexts:",
      "  - name: tinylb",
      "    context: { cluster: test, user: tinylb }",
      "users:",
      "  - name: tinylb",
      "    user: { tokenFile: token }",
      "",
    ].join("\n"),
  );

  return path;
}

test(
  "tinylb follows the kubernetes EndpointSlices through its own listener",
  async () => {
    const api = await startMock();
    api.apply({ name: "kubernetes", endpoints: [{ addresses: ["127.0.0.1"], ready: true }], ports: [{ name: "https", port: api.port }] });
    // The kubeconfig names a second mock: requests sent straight to the kubeconfig server land there.
    const direct = await startMock();
    const configPath = join(certificates.dir, "tinylb.yaml");
    writeFileSync(configPath, ['admin: "off"', "shutdownGrace: 0s", "kubernetes:", `  kubeconfig: ${writeKubeconfig(direct.url)}`, ""].join("\n"));

    const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `seed=127.0.0.1:${api.port}`, "--config", configPath, "--log-level", "debug"]);
    cleanup.push(() => tinylb[Symbol.asyncDispose]());
    await tinylb.waitForLog("tinylb started");

    // Step 1: the seed and the API server from the EndpointSlice, reached through the listener.
    await tinylb.waitForLog(`backend set changed component=server provider=kubernetes count=2 backends="kubernetes:127.0.0.1=127.0.0.1:${api.port},seed=127.0.0.1:${api.port}"`, 20_000);
    await waitFor("the watch", () => api.openWatches === 1);
    expect(api.requestsOf("list").length).toBe(1);
    expect(api.requestsOf("list")[0]!.authorization).toBe(`Bearer ${TOKEN}`);
    expect(direct.requests.length).toBe(0);
    expect(tinylb.stderr).toMatch(new RegExp(`connection opened .*client=127\\.0\\.0\\.1:\\d+ backend=seed target=127\\.0\\.0\\.1:${api.port}`));

    // Step 2: an address that is not ready changes nothing.
    api.apply({ name: "kubernetes", endpoints: [{ addresses: ["127.0.0.1"], ready: true }, { addresses: ["127.0.0.2"], ready: false }], ports: [{ name: "https", port: api.port }] });
    await tinylb.waitForLog("EndpointSlice event", 20_000);

    // Step 3: an empty response keeps the last set.
    api.delete("kubernetes");
    await tinylb.waitForLog("no ready address with an https port in the EndpointSlices; keeping the last backend set", 20_000);

    // Step 4: a failing API keeps the last set too, and the watch resumes once it is back.
    api.failWith = { kind: "watch", status: 503 };
    api.endWatches();
    await tinylb.waitForLog("Kubernetes list or watch failed; keeping the last backend set and retrying", 20_000);
    api.failWith = undefined;
    await tinylb.waitForLog("Kubernetes API reachable again", 20_000);
    api.apply({ name: "kubernetes", endpoints: [{ addresses: ["127.0.0.1"], ready: true }], ports: [{ name: "https", port: api.port }] });
    // The slice came from the list at first, so this is the first ADDED event.
    await tinylb.waitForLog(/EndpointSlice event .*type=ADDED slice=kubernetes/, 20_000);

    expect(tinylb.stderr.match(/backend set changed/g)?.length).toBe(2);
    expect(direct.requests.length).toBe(0);
    expect(await tinylb.stop()).toBe(0);
  },
  E2E_TIMEOUT_MS,
);

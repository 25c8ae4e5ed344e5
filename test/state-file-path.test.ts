import { expect, test } from "bun:test";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "../src/cli.ts";
import { ConfigError } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { checkStartSettings } from "../src/start-checks.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-state-path-");
const PEM = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";

const caFile = join(directory, "ca.pem");
const tokenFile = join(directory, "token");
const kubeCaFile = join(directory, "kube-ca.crt");
const kubeconfig = join(directory, "kubeconfig");
writeFileSync(caFile, PEM);
writeFileSync(tokenFile, "secret-token\n");
writeFileSync(kubeCaFile, PEM);
writeFileSync(
  kubeconfig,
  JSON.stringify({
    "current-context": "tinylb",
    clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443", "certificate-authority": "kube-ca.crt" } }],
    contexts: [{ name: "tinylb", context: { cluster: "c", user: "u" } }],
    users: [{ name: "u", user: { token: "t" } }],
  }),
);

/** Writes a config file with `lines` after a listen address and returns its path. */
function configFile(name: string, lines: string[]): string {
  const path = join(directory, name);
  writeFileSync(path, ["listen: 127.0.0.1:7443", "admin: \"off\"", ...lines].join("\n") + "\n");

  return path;
}

/** Runs the start checks on the command line `argv` after a listen address. */
function checkStart(argv: string[]): void {
  const cli = parseArgs(["--listen", "127.0.0.1:7443", ...argv]);
  checkStartSettings(resolveSettings(cli), cli);
}

const fix = "pick another path for --state-file, such as /var/lib/tinylb/state.json";
const config = configFile("plain.yaml", []);
const configLink = join(directory, "config-link.yaml");
symlinkSync(config, configLink);

test.each([
  ["the config file", ["--config", config, "--state-file", config], `invalid state file ${config}: --config names the same file (${config}), which tinylb reads`],
  [
    "the config file through a symlink",
    ["--config", config, "--state-file", configLink],
    `--config names the same file (${config}), which tinylb reads, so each save of the running set would replace it; ${fix}`,
  ],
  ["the admin token file", ["--admin", `unix:${join(directory, "admin.sock")}`, "--admin-token-file", tokenFile, "--state-file", tokenFile], `--admin-token-file names the same file (${tokenFile})`],
  ["the probe CA of a flag", ["--probe", "https", "--probe-ca", caFile, "--state-file", caFile], `--probe-ca names the same file (${caFile})`],
  ["the probe token of a flag", ["--probe", "http", "--probe-token-file", tokenFile, "--state-file", tokenFile], `--probe-token-file names the same file (${tokenFile})`],
  ["a backend's probe CA", ["--config", configFile("backend-probe.yaml", [`backends: [{ id: api-1, target: 127.0.0.1:9, probe: { kind: https, tls: { ca: ${caFile} } } }]`]), "--state-file", caFile], `backends[id=api-1].probe.tls.ca names the same file (${caFile})`],
  ["the etcd CA", ["--config", configFile("etcd.yaml", [`etcd: { endpoints: ["https://127.0.0.1:2379"], prefix: /p/, caFile: ${caFile} }`]), "--state-file", caFile], `etcd.caFile names the same file (${caFile})`],
  ["the kubeconfig", ["--config", configFile("kube.yaml", [`kubernetes: { kubeconfig: ${kubeconfig} }`]), "--state-file", kubeconfig], `kubernetes.kubeconfig names the same file (${kubeconfig})`],
  ["a file the kubeconfig names", ["--config", configFile("kube-ca.yaml", [`kubernetes: { kubeconfig: ${kubeconfig} }`]), "--state-file", kubeCaFile], `certificate-authority of kubeconfig ${kubeconfig} names the same file (${kubeCaFile})`],
])("state file path rejected at %s", (_case, argv, message) => {
  expect(() => checkStart(argv)).toThrow(ConfigError);
  expect(() => checkStart(argv)).toThrow(message);
});

test("state file path rejected when its copy is read", () => {
  const token = join(directory, "state.json.bad");
  writeFileSync(token, "0123456789abcdef0123456789abcdef\n");
  const state = join(directory, "state.json");
  const argv = ["--admin", `unix:${join(directory, "admin.sock")}`, "--admin-token-file", token, "--state-file", state];

  expect(() => checkStart(argv)).toThrow(
    `invalid state file ${state}: --admin-token-file names ${token}, which tinylb reads, and a state file that cannot be read is copied to that path before it is rewritten; ${fix}`,
  );
});

test("state file path named by stateFile in the config", () => {
  const path = configFile("key.yaml", [`probe: { kind: https, tls: { ca: ${caFile} } }`, `stateFile: ${caFile}`]);

  expect(() => checkStart(["--config", path])).toThrow(
    `invalid state file ${caFile}: probe.tls.ca names the same file (${caFile}), which tinylb reads, so each save of the running set would replace it; pick another path for stateFile, such as /var/lib/tinylb/state.json`,
  );
});

test.each([
  ["a Unix listen socket", ["--listen", `unix:${join(directory, "lb.sock")}`, "--admin", "off"], `--listen unix:${join(directory, "lb.sock")} binds a Unix socket at the same path`],
  ["the admin socket", ["--admin", `unix:${join(directory, "lb.sock")}`], `--admin unix:${join(directory, "lb.sock")} binds a Unix socket at the same path`],
])("state file path rejected at %s", (_case, argv, message) => {
  const run = (): void => checkStart([...argv, "--state-file", join(directory, "lb.sock")]);

  expect(run).toThrow(`invalid state file ${join(directory, "lb.sock")}: ${message}, so the state file would take the socket's place and binding the socket would fail; ${fix}`);
});

test("state file path of a symlink to a socket not bound yet", () => {
  const socket = join(directory, "later.sock");
  const link = join(directory, "later-link.sock");
  symlinkSync(socket, link);

  expect(() => checkStart(["--admin", `unix:${socket}`, "--state-file", link])).toThrow(`--admin unix:${socket} binds a Unix socket at the same path`);
});

test("state file path beside the files read is accepted", () => {
  const argv = ["--config", config, "--probe", "https", "--probe-ca", caFile, "--admin", `unix:${join(directory, "admin.sock")}`, "--admin-token-file", tokenFile];

  expect(() => checkStart([...argv, "--state-file", join(directory, "state.json")])).not.toThrow();
});

/**
 * The files under examples/ that operators copy: the systemd unit passes systemd-analyze,
 * the static pod manifest is YAML with what a kubelet needs, and the config loads.
 * Nothing here starts the example config, because its targets are not loopback addresses.
 */
import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { formatAddress } from "../src/address.ts";
import { loadConfigFile } from "../src/config.ts";
import { DOC_PAGES, readRepoFile } from "./support/doc-pages.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { makeTestPki } from "./support/test-pki.ts";
import { BINARY } from "./support/tinylb-process.ts";

const EXAMPLES = join(import.meta.dir, "..", "examples");
const UNIT = join(EXAMPLES, "tinylb.service");
const SOCKET_UNIT = join(EXAMPLES, "tinylb.socket");
const MANIFEST = join(EXAMPLES, "kubernetes", "tinylb-static-pod.yaml");
const CONFIG = join(EXAMPLES, "tinylb-apiservers.yaml");
/** Where the unit and the manifest expect the config and the binary on a node. */
const NODE_CONFIG = "/etc/tinylb/tinylb.yaml";
const NODE_BINARY = "/usr/local/bin/tinylb";
/** Maximum `systemd-analyze security` exposure level accepted, on its scale from 0 (locked down) to 10 (unprotected). */
const MAX_EXPOSURE = 2.0;

const systemdAnalyze = Bun.which("systemd-analyze");
if (systemdAnalyze === null) {
  console.warn("systemd unit checks skipped: systemd-analyze is not installed (Debian package systemd)");
}

const workDir = tempDirectory("tinylb-examples-");

/**
 * Writes a copy of the unit whose ExecStart and ExecReload name the freshly built binary,
 * because `systemd-analyze verify` rejects a unit whose program does not exist on this machine.
 */
function unitForThisMachine(): string {
  const text = readFileSync(UNIT, "utf8");
  expect(text).toContain(`ExecStart=${NODE_BINARY} --config ${NODE_CONFIG}\n`);
  const path = join(workDir, "tinylb.service");
  writeFileSync(path, text.replaceAll(`=${NODE_BINARY} `, `=${BINARY} `));

  return path;
}

test.skipIf(systemdAnalyze === null)("systemd socket unit passes systemd-analyze verify", () => {
  unitForThisMachine();
  const socketUnit = join(workDir, "tinylb.socket");
  writeFileSync(socketUnit, readFileSync(SOCKET_UNIT, "utf8"));
  const result = Bun.spawnSync([systemdAnalyze!, "verify", socketUnit], { stdout: "pipe", stderr: "pipe", cwd: workDir });

  expect(result.stderr.toString()).toBe("");
  expect(result.exitCode).toBe(0);
});

test("systemd socket unit listens on the config's address", () => {
  const socketUnit = readFileSync(SOCKET_UNIT, "utf8");
  const config = loadConfigFile(CONFIG);

  // tinylb rejects a passed socket that no listen address matches.
  expect([...socketUnit.matchAll(/^ListenStream=(.*)$/gm)].map((match) => match[1])).toEqual(config.listen!.map(formatAddress));
  expect(socketUnit).toMatch(/^Accept=no$/m);
});

test("systemd unit is a notify service", () => {
  expect(readFileSync(UNIT, "utf8")).toMatch(/^Type=notify$/m);
});

test.skipIf(systemdAnalyze === null)("systemd unit passes systemd-analyze verify", () => {
  const result = Bun.spawnSync([systemdAnalyze!, "verify", unitForThisMachine()], { stdout: "pipe", stderr: "pipe" });

  // verify exits 0 on unknown keys and bad values too, and reports them only on stderr.
  expect(result.stderr.toString()).toBe("");
  expect(result.exitCode).toBe(0);
});

test.skipIf(systemdAnalyze === null)("systemd unit exposure stays low", () => {
  const result = Bun.spawnSync([systemdAnalyze!, "security", "--offline=yes", "--no-pager", unitForThisMachine()], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const match = /Overall exposure level for tinylb\.service: (\d+\.\d+)/.exec(result.stdout.toString());

  expect(match).not.toBeNull();
  expect(Number(match![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
});

test("systemd unit checks the config before a reload", () => {
  const text = readFileSync(UNIT, "utf8");
  const start = /^ExecStart=\S+ (.*)$/m.exec(text)?.[1];
  const reloads = [...text.matchAll(/^ExecReload=(.*)$/gm)].map((match) => match[1]);

  // systemd runs the ExecReload lines in order and stops at the first that fails.
  expect(start).toBe(`--config ${NODE_CONFIG}`);
  expect(reloads).toEqual([`${NODE_BINARY} check ${start}`, "/bin/kill -HUP $MAINPID"]);
});

test("systemd unit keeps the JIT working", () => {
  const text = readFileSync(UNIT, "utf8");

  // The JavaScriptCore JIT maps memory writable and then executable.
  expect(text).not.toMatch(/^MemoryDenyWriteExecute=(yes|true|on|1)$/m);
});

/** DNS-1123 label: what Kubernetes accepts as a container, volume or pod name. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

interface Manifest {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: {
    hostNetwork?: boolean;
    priorityClassName?: string;
    containers?: {
      name?: string;
      image?: string;
      command?: string[];
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: { name: string; hostPath?: { path: string; type?: string }; emptyDir?: object }[];
  };
}

test("static pod manifest has what a kubelet needs", () => {
  const manifest = Bun.YAML.parse(readFileSync(MANIFEST, "utf8")) as Manifest;

  expect(manifest.apiVersion).toBe("v1");
  expect(manifest.kind).toBe("Pod");
  expect(manifest.metadata?.name).toMatch(DNS_LABEL);
  expect(manifest.metadata?.namespace).toBe("kube-system");
  expect(manifest.spec?.hostNetwork).toBe(true);
  expect(manifest.spec?.priorityClassName).toBe("system-node-critical");
  expect(manifest.spec?.containers?.length).toBe(1);

  const container = manifest.spec!.containers![0]!;
  expect(container.name).toMatch(DNS_LABEL);
  expect(container.image).toMatch(/^\S+:\S+$/);
  expect(container.command).toEqual([NODE_BINARY, "--config", NODE_CONFIG]);
});

test("static pod mounts binary, config and CA", () => {
  const manifest = Bun.YAML.parse(readFileSync(MANIFEST, "utf8")) as Manifest;
  const volumes = new Map(manifest.spec!.volumes!.map((volume) => [volume.name, volume]));
  const mounts = manifest.spec!.containers![0]!.volumeMounts!;

  for (const mount of mounts) {
    expect(volumes.has(mount.name)).toBe(true);
    expect(mount.name).toMatch(DNS_LABEL);
  }
  for (const volume of volumes.values()) {
    expect(volume.hostPath === undefined || volume.hostPath.path.startsWith("/")).toBe(true);
  }
  const hostPathAt = (mountPath: string): string | undefined => {
    const mount = mounts.find((candidate) => candidate.mountPath === mountPath);

    return mount === undefined ? undefined : volumes.get(mount.name)?.hostPath?.path;
  };
  expect(hostPathAt(NODE_BINARY)).toBe(NODE_BINARY);
  expect(hostPathAt(dirname(NODE_CONFIG))).toBe(dirname(NODE_CONFIG));

  // Every file the example config reads must be mounted: the probe's CA and the admin socket folder.
  const config = loadConfigFile(CONFIG);
  const caFile = config.health?.probe?.tls?.caFile;
  expect(caFile).toBeDefined();
  expect(hostPathAt(caFile!)).toBe(caFile);
  expect(mounts.some((mount) => mount.mountPath === "/run/tinylb")).toBe(true);
  // The root file system is read-only, so the state file's folder needs a volume that survives restarts.
  const stateFile = config.providers?.stateFile;
  expect(stateFile).toBe("/var/lib/tinylb/state.json");
  expect(hostPathAt(dirname(stateFile!))).toBe(dirname(stateFile!));
});

test("apiserver config balances three backends with /readyz probes", () => {
  const config = loadConfigFile(CONFIG);

  expect(config.listen).toEqual([{ kind: "tcp", host: "127.0.0.1", port: 7443 }]);
  expect(config.backends?.map((backend) => backend.id)).toEqual(["apiserver-1", "apiserver-2", "apiserver-3"]);
  expect(config.health?.probe?.kind).toBe("https");
  expect(config.health?.probe?.path).toBe("/readyz");
  expect(config.health?.probe?.expectStatus).toEqual([200]);
  expect(config.balance).toBe("leastconn");
});

test("systemd unit provides the state and admin folders", () => {
  const unit = readFileSync(UNIT, "utf8");

  // ProtectSystem=strict leaves only these folders writable.
  expect(unit).toMatch(/^ProtectSystem=strict$/m);
  expect(unit).toMatch(/^StateDirectory=tinylb$/m);
  expect(unit).toMatch(/^RuntimeDirectory=tinylb$/m);
  // The state file paths that the README and the docs give must be in the StateDirectory.
  const stateFiles = DOC_PAGES.flatMap((page) => [...readRepoFile(page).matchAll(/stateFile: (\S+)/g)].map((match) => match[1]!));
  expect(stateFiles.length).toBeGreaterThan(0);
  for (const path of stateFiles) {
    expect(path.startsWith("/var/lib/tinylb/")).toBe(true);
  }
  const admin = loadConfigFile(CONFIG).providers?.admin;
  expect(admin).toEqual({ kind: "unix", path: "/run/tinylb/admin.sock" });
});

test("configuration.md shows the example's check line", async () => {
  const pki = makeTestPki();
  try {
    // The example's CA, admin socket and state file are paths on a node, so the copy moves them into the test folder.
    const copy = join(workDir, "tinylb-apiservers.yaml");
    const text = readFileSync(CONFIG, "utf8")
      .replace("/etc/kubernetes/pki/ca.crt", pki.caCert)
      .replace("unix:/run/tinylb/admin.sock", `unix:${join(workDir, "admin.sock")}`)
      .replace("/var/lib/tinylb/state.json", join(workDir, "state.json"));
    writeFileSync(copy, text);
    const check = Bun.spawn([BINARY, "check", "--config", copy], { stdout: "pipe", stderr: "pipe" });
    const stdout = await new Response(check.stdout).text();

    expect(await check.exited).toBe(0);
    expect(readRepoFile("docs/configuration.md")).toContain(`$ tinylb check --config ${NODE_CONFIG}\n${stdout.replace(copy, NODE_CONFIG)}`);
  } finally {
    pki.remove();
  }
});

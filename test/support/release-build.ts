import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const CACHE_DIR = join(ROOT, "dist", "release-cache");
const STALE_AFTER_MS = 30 * 60 * 1000;

/** Release binaries of one build: the folder that holds them and SHA256SUMS, and the commit baked in. */
export interface ReleaseBuild {
  dir: string;
  commit: string;
}

let pending: Promise<ReleaseBuild> | undefined;

/**
 * Builds every release target once per test run and returns where the binaries are.
 *
 * The binaries go to `dist/release-cache/KEY`, where KEY hashes the git commit, the Bun
 * version and every file under `src/` plus `build.ts` and `package.json`, so a second test
 * file, and a later run on unchanged sources, reuses them. Cache folders of other sources
 * are deleted once they are 30 minutes old, because five binaries take about 530 MB.
 */
export function releaseBuild(): Promise<ReleaseBuild> {
  pending ??= build();

  return pending;
}

function gitCommit(): string {
  const result = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: ROOT, stderr: "ignore" });
  const commit = result.success ? result.stdout.toString().trim() : "";

  return commit === "" ? "unknown" : commit;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

function cacheKey(commit: string): string {
  const hash = createHash("sha256").update(`${commit}\n${Bun.version}\n`);
  for (const file of [...sourceFiles(join(ROOT, "src")), join(ROOT, "build.ts"), join(ROOT, "package.json")]) {
    hash.update(relative(ROOT, file)).update("\0").update(readFileSync(file)).update("\0");
  }

  return hash.digest("hex").slice(0, 16);
}

/**
 * Deletes cached builds of other sources. A build younger than STALE_AFTER_MS is kept,
 * because a test run started on other sources a moment ago may still be using it.
 */
function removeStaleBuilds(key: string): void {
  const now = Date.now();
  for (const entry of existsSync(CACHE_DIR) ? readdirSync(CACHE_DIR) : []) {
    const path = join(CACHE_DIR, entry);
    if (!entry.startsWith(key) && now - statSync(path).mtimeMs > STALE_AFTER_MS) {
      rmSync(path, { recursive: true, force: true });
    }
  }
}

async function build(): Promise<ReleaseBuild> {
  const commit = gitCommit();
  const key = cacheKey(commit);
  const dir = join(CACHE_DIR, key);
  if (existsSync(join(dir, "SHA256SUMS"))) {
    return { dir, commit };
  }

  // Build beside the final folder and rename, so an interrupted build is never reused.
  const partial = join(CACHE_DIR, `${key}.partial-${process.pid}`);
  const child = Bun.spawn([process.execPath, "build.ts", "--release", "--outdir", partial], {
    cwd: ROOT,
    stdout: "ignore",
    stderr: "pipe",
  });
  const [exitCode, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  if (exitCode !== 0) {
    rmSync(partial, { recursive: true, force: true });
    throw new Error(`bun build.ts --release failed with exit code ${exitCode}:\n${stderr}`);
  }

  removeStaleBuilds(key);
  if (existsSync(join(dir, "SHA256SUMS"))) {
    // Another test process finished the same build first; its files are identical in purpose.
    rmSync(partial, { recursive: true, force: true });

    return { dir, commit };
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);

  return { dir, commit };
}

/**
 * Builds tinylb as single-file executables with `bun build --compile`.
 *
 * Usage:
 *   bun build.ts                          dist/tinylb for this machine (the default, used by `npm test`)
 *   bun build.ts --release [--outdir DIR] every release target into DIR (default dist/release),
 *                                         named tinylb-linux-ARCH[-VARIANT], plus SHA256SUMS
 *   bun build.ts --target NAME [...]      only the named release targets, such as linux-arm64-musl
 *
 * Bun downloads the runtime of a foreign target from the npm registry on first use and keeps
 * it in its install cache, so only the first cross build of each target needs the network.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const ENTRY = "src/main.ts";
/** The relay worker thread's entry; `new Worker` finds it in the executable only when built in. */
const WORKER_ENTRY = "src/relay-worker.ts";
const HOST_OUTFILE = "dist/tinylb";
const RELEASE_OUTDIR = "dist/release";
const CHECKSUMS_FILE = "SHA256SUMS";

/** Release targets: the name in the file name, and Bun's `--target` value. */
export const RELEASE_TARGETS: Readonly<Record<string, string>> = {
  "linux-x64": "bun-linux-x64",
  // Bun 1.4.4 resolves "-baseline" to the same runtime as linux-x64: one x64 runtime for
  // Nehalem-class CPUs that picks AVX2 code paths at run time. The file is kept so that
  // operators of CPUs without AVX2 find a binary under the name they look for.
  "linux-x64-baseline": "bun-linux-x64-baseline",
  "linux-x64-musl": "bun-linux-x64-musl",
  "linux-arm64": "bun-linux-arm64",
  "linux-arm64-musl": "bun-linux-arm64-musl",
};

/**
 * Flags shared by every build.
 *
 * `--env=disable` keeps `process.env.NODE_ENV` a run-time lookup: without it Bun 1.4.4
 * replaces it with the build machine's value (or "development") when it bundles.
 * The two `--no-compile-autoload-*` flags stop the binary from loading a `.env` or
 * `bunfig.toml` from whatever folder it runs in.
 * `--bytecode` stores precompiled JavaScriptCore bytecode, which cuts the start-up time;
 * docs/binaries.md has the figures behind each flag.
 */
const COMMON_FLAGS = [
  "--compile",
  "--minify",
  "--bytecode",
  "--format=esm",
  "--env=disable",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
];

interface BuildOptions {
  release: boolean;
  outdir: string;
  targets: string[];
}

/** Returns the short git commit of the work tree, or "unknown" outside a checkout. */
function gitCommit(): string {
  const result = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { stderr: "ignore" });
  const commit = result.success ? result.stdout.toString().trim() : "";

  return commit === "" ? "unknown" : commit;
}

/** Compiles ENTRY for one Bun target into `outfile`; exits the build with status 1 on failure. */
function compile(bunTarget: string, outfile: string, commit: string, crossCompile: boolean): void {
  const build = Bun.spawnSync(
    [
      process.execPath,
      "build",
      ...COMMON_FLAGS,
      ...(crossCompile ? [`--target=${bunTarget}`] : []),
      `--define=TINYLB_COMMIT=${JSON.stringify(commit)}`,
      `--define=TINYLB_TARGET=${JSON.stringify(bunTarget)}`,
      ENTRY,
      WORKER_ENTRY,
      "--outfile",
      outfile,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (!build.success) {
    process.stderr.write(build.stderr);
    console.error(`build.ts: bun build --compile --target=${bunTarget} failed with exit code ${build.exitCode}`);
    process.exit(1);
  }
}

/** Returns one `sha256sum`-format line for `path`, naming the file without its folder. */
function checksumLine(path: string): string {
  const digest = createHash("sha256").update(readFileSync(path)).digest("hex");

  return `${digest}  ${basename(path)}\n`;
}

/** Builds the release targets into `outdir` and writes SHA256SUMS last, so its presence marks a finished build. */
function buildRelease(options: BuildOptions, commit: string): void {
  mkdirSync(options.outdir, { recursive: true });
  rmSync(join(options.outdir, CHECKSUMS_FILE), { force: true });

  let checksums = "";
  for (const name of options.targets) {
    const outfile = join(options.outdir, `tinylb-${name}`);
    const partial = `${outfile}.partial`;
    compile(RELEASE_TARGETS[name]!, partial, commit, true);
    renameSync(partial, outfile);
    checksums += checksumLine(outfile);
    console.log(`built ${outfile}`);
  }
  writeFileSync(join(options.outdir, CHECKSUMS_FILE), checksums);
  console.log(`wrote ${join(options.outdir, CHECKSUMS_FILE)}`);
}

function parseOptions(argv: string[]): BuildOptions {
  const options: BuildOptions = { release: false, outdir: RELEASE_OUTDIR, targets: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--release") {
      options.release = true;
    } else if (arg === "--outdir" && argv[i + 1] !== undefined) {
      options.outdir = argv[++i]!;
    } else if (arg === "--target" && argv[i + 1] !== undefined) {
      const name = argv[++i]!;
      if (RELEASE_TARGETS[name] === undefined) {
        console.error(`build.ts: unknown target "${name}"; use one of ${Object.keys(RELEASE_TARGETS).join(", ")}`);
        process.exit(2);
      }
      options.targets.push(name);
    } else {
      console.error(`build.ts: unexpected argument "${arg}"; usage: bun build.ts [--release] [--target NAME]... [--outdir DIR]`);
      process.exit(2);
    }
  }
  if (options.targets.length > 0) {
    options.release = true;
  } else if (options.release) {
    options.targets = Object.keys(RELEASE_TARGETS);
  }

  return options;
}

if (import.meta.main) {
  const options = parseOptions(process.argv.slice(2));
  const commit = gitCommit();
  if (options.release) {
    buildRelease(options, commit);
  } else {
    mkdirSync("dist", { recursive: true });
    // NOTE: the label names no C library, so a host build on a musl system reads bun-linux-x64 too.
    compile(`bun-${process.platform}-${process.arch}`, HOST_OUTFILE, commit, false);
  }
}

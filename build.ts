/**
 * Builds the single-file executable `dist/tinylb` for this machine with `bun build --compile`.
 *
 * Usage: bun build.ts
 */
import { mkdirSync } from "node:fs";

const ENTRY = "src/main.ts";
const OUTFILE = "dist/tinylb";

/** Returns the short git commit of the work tree, or "unknown" outside a checkout. */
function gitCommit(): string {
  const result = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { stderr: "ignore" });
  const commit = result.success ? result.stdout.toString().trim() : "";

  return commit === "" ? "unknown" : commit;
}

const target = `bun-${process.platform}-${process.arch}`;
mkdirSync("dist", { recursive: true });
const build = Bun.spawnSync(
  [
    process.execPath,
    "build",
    "--compile",
    "--minify",
    // The binary must not pick up a .env or bunfig.toml from whatever folder it runs in.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    `--define=TINYLB_COMMIT=${JSON.stringify(gitCommit())}`,
    `--define=TINYLB_TARGET=${JSON.stringify(target)}`,
    ENTRY,
    "--outfile",
    OUTFILE,
  ],
  { stdout: "inherit", stderr: "inherit" },
);
if (!build.success) {
  console.error(`build.ts: bun build --compile failed with exit code ${build.exitCode}`);
  process.exit(1);
}

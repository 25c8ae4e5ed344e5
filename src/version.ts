import packageJson from "../package.json" with { type: "json" };

declare const TINYLB_COMMIT: string | undefined;
declare const TINYLB_TARGET: string | undefined;

/** The release version, from package.json. */
export const VERSION: string = packageJson.version;

/** The git commit `build.ts` baked in, or "unknown" when running from source. */
export function buildCommit(): string {
  return typeof TINYLB_COMMIT === "string" ? TINYLB_COMMIT : "unknown";
}

/** The Bun target `build.ts` compiled for, or this platform marked as not compiled. */
function buildTarget(): string {
  return typeof TINYLB_TARGET === "string" ? TINYLB_TARGET : `bun-${process.platform}-${process.arch} (not compiled)`;
}

/** Formats the `--version` line: version, git commit, Bun version and build target. */
export function versionLine(): string {
  return `tinylb ${VERSION} (commit ${buildCommit()}, bun ${Bun.version}, target ${buildTarget()})`;
}

/**
 * Describes the build and the environment the process reads at run time, for one debug
 * line at start-up.
 *
 * `nodeEnv` is the NODE_ENV value this process reads. tinylb does not change behaviour on it,
 * and the field shows that a compiled binary takes it from the machine it runs on and not from the
 * machine that built it. It carries no other variable, so nothing secret reaches the log.
 */
export function runtimeFields(): Record<string, string> {
  return {
    version: VERSION,
    commit: buildCommit(),
    bun: Bun.version,
    target: buildTarget(),
    nodeEnv: process.env.NODE_ENV ?? "(unset)",
  };
}

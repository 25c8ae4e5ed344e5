import packageJson from "../package.json" with { type: "json" };

declare const TINYLB_COMMIT: string | undefined;
declare const TINYLB_TARGET: string | undefined;

/** The release version, from package.json. */
export const VERSION: string = packageJson.version;

/** Formats the `--version` line: version, git commit, Bun version and build target. */
export function versionLine(): string {
  const commit = typeof TINYLB_COMMIT === "string" ? TINYLB_COMMIT : "unknown";
  const target = typeof TINYLB_TARGET === "string" ? TINYLB_TARGET : `bun-${process.platform}-${process.arch} (not compiled)`;

  return `tinylb ${VERSION} (commit ${commit}, bun ${Bun.version}, target ${target})`;
}

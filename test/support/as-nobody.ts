/** Whether this process may start others as user nobody: it runs as root and setpriv is installed. */
export const canDropPrivileges = process.getuid?.() === 0 && Bun.spawnSync(["setpriv", "--version"]).success;

/** User and group id of nobody on Debian and most Linux distributions. */
export const NOBODY_UID = 65534;

/** Returns `command` prefixed with setpriv, so that it runs as user and group nobody without other groups. */
export function asNobody(command: string[]): string[] {
  return ["setpriv", `--reuid=${NOBODY_UID}`, `--regid=${NOBODY_UID}`, "--clear-groups", ...command];
}

/** A user id that owns no file here, for a second, hostile local user. */
export const OTHER_UID = 1234;

/** Returns `command` prefixed with setpriv, so that it runs as user and group `OTHER_UID` without other groups. */
export function asOtherUser(command: string[]): string[] {
  return ["setpriv", `--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, "--clear-groups", ...command];
}

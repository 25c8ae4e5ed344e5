/** Makes a FIFO (named pipe) at `path` with mkfifo(1), or throws with its error output. */
export function mkfifo(path: string): void {
  const result = Bun.spawnSync(["mkfifo", path]);
  if (result.exitCode !== 0) {
    throw new Error(`mkfifo ${path} failed: ${result.stderr.toString()}`);
  }
}

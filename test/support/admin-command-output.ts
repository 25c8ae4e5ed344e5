import type { AdminCommandOutput } from "../../src/admin-client.ts";
import { type CliOptions, parseArgs } from "../../src/cli.ts";

/** The exit code and the output of an admin command run in the test process. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Parses `argv` as the command line would and runs an admin command such as `tinylb disable`
 * in this process with `runCommand`, collecting what it prints.
 */
export async function runInProcess(runCommand: (cli: CliOptions, output: AdminCommandOutput) => Promise<number>, argv: string[]): Promise<CommandResult> {
  let stdout = "";
  let stderr = "";
  const code = await runCommand(parseArgs(argv), { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });

  return { code, stdout, stderr };
}

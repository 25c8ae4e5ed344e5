/**
 * Switches: flags that take no value, such as `--json`. Each may also be written
 * `--json=true` or `--json=false` (or `1`, `0`, `t`, `f`), as Go programs such as kubectl
 * accept. `=false` sets the opposite explicitly, so it wins over the config file as any flag does.
 */

/** Values that turn a switch on or off, in any case: the forms Go's flag package accepts. */
const TRUE_VALUES = new Set(["true", "t", "1"]);
const FALSE_VALUES = new Set(["false", "f", "0"]);

/** A switch as written on the command line: its name, and whether it is on. */
export interface SwitchArg {
  flag: string;
  on: boolean;
}

/**
 * Reads `arg`, a switch alone or with `=true` or `=false`. Returns the switch, or an error
 * message that names the value and the forms a switch takes.
 */
export function parseSwitchArg(arg: string): SwitchArg | string {
  const equals = arg.indexOf("=");
  if (equals < 0) {
    return { flag: arg, on: true };
  }

  const flag = arg.slice(0, equals);
  const value = arg.slice(equals + 1).toLowerCase();
  if (TRUE_VALUES.has(value) || FALSE_VALUES.has(value)) {
    return { flag, on: TRUE_VALUES.has(value) };
  }

  return `${flag} is a switch: write ${flag}, ${flag}=true or ${flag}=false (got ${JSON.stringify(arg.slice(equals + 1))})`;
}

/** Returns the flag name of `arg`: the part before `=`, if any. */
export function flagName(arg: string): string {
  const equals = arg.indexOf("=");

  return arg.startsWith("--") && equals > 0 ? arg.slice(0, equals) : arg;
}

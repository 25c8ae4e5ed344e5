/** Drops the values of the process metrics, which change between two scrapes (CPU time, memory, descriptors). */
export function withoutProcessSamples(text: string): string {
  return text.replace(/^(process_[a-z_]+) .*$/gm, "$1");
}

/** Bytes a mutation inserts: invalid UTF-8 sequences, NUL, and JSON/YAML punctuation. */
const INSERTIONS: readonly number[][] = [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0x00], [0x22], [0x7b], [0x5b], [0x2c], [0x3a], [0x0a, 0x20, 0x20]];

/**
 * A seeded source of random choices and byte-level damage for fuzz tests, so a failing
 * input can be reproduced from the seed.
 */
export class Fuzzer {
  #seed: number;

  constructor(seed: number) {
    this.#seed = seed;
  }

  /** Returns the next number in [0, 1) of a linear congruential sequence. */
  random(): number {
    this.#seed = (this.#seed * 1_103_515_245 + 12_345) & 0x7fffffff;

    return this.#seed / 0x80000000;
  }

  /** Returns a whole number in [0, limit). */
  below(limit: number): number {
    return Math.floor(this.random() * limit);
  }

  /** Returns one of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** Damages bytes with one to four edits: flips, deletions, insertions (including invalid UTF-8), truncation and repeats. */
  mutateBytes(bytes: Uint8Array): Uint8Array {
    const out = [...bytes];
    const edits = 1 + this.below(4);
    for (let i = 0; i < edits && out.length > 0; i++) {
      const at = this.below(out.length);
      switch (this.below(5)) {
        case 0:
          out[at] = this.below(256);
          break;
        case 1:
          out.splice(at, 1 + this.below(8));
          break;
        case 2:
          out.splice(at, 0, ...this.pick(INSERTIONS));
          break;
        case 3:
          out.length = at;
          break;
        default:
          out.splice(at, 0, ...out.slice(this.below(out.length)).slice(0, 16));
      }
    }

    return Uint8Array.from(out);
  }
}

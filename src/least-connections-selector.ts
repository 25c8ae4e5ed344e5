import type { Backend } from "./backend.ts";
import type { BackendSelector } from "./backend-selector.ts";
import type { BackendSet } from "./backend-set.ts";
import type { RoundRobinSelector } from "./round-robin-selector.ts";
import type { SlowStartWeights } from "./slow-start.ts";
import { SlowStartRotation } from "./slow-start-rotation.ts";

/** Connections open or dialing per backend target, as ConnectionLimits counts them. */
export interface TargetCounts {
  count(target: string): number;
}

/**
 * Hands out the backend whose target has the fewest connections open or dialing, in every
 * thread (`balance: leastconn`). Clients that hold connections for hours then even out
 * again after a backend returns, where round-robin would keep the load uneven.
 *
 * Ties go by the rotation: of the backends with the lowest count, the pick is the one the
 * round-robin rotation reaches first, and the rotation moves past it. With equal counts this
 * is round-robin, so every backend of a set is reached within one cycle. A dial counts from
 * the moment its backend is reserved, so a burst of clients spreads out before any dial
 * completes.
 *
 * Each pick reads the counts once, then offers the backends to `accept` one count level at a
 * time, lowest first, each level in rotation order. So every backend is offered at most once,
 * and one that `accept` rejects (at its cap, or already tried) makes way for the next least
 * loaded. Threads that pick at the same moment may read the same counts and pick the same
 * backend; both reservations are counted, so the next picks even this out.
 *
 * With slow start, the first pick compares count / weight instead of the count. A backend in
 * slow start then takes clients until its count is about its weight times the others', rather
 * than every client until the counts are even. Equal scores are ties, which the rotation
 * breaks with the slow start credit of SlowStartRotation: a backend in slow start takes only
 * its weight's share of the ties. Short connections leave every count at 0, so all picks are
 * ties and the backend then gets its weight's share, as under round-robin. HAProxy's leastconn
 * orders servers by connections over weight too. `following`, the failover order within one
 * client, compares plain counts.
 *
 * Cost per pick: one count read per backend that `candidate` keeps, then one pass of the
 * rotation over the whole set per count level offered, which is one level unless every
 * backend of the lowest level is rejected. For a set of 10,000 backends with distinct
 * targets, bench/selection.ts measured about 0.6 ms per client in one thread and 1.1 ms with
 * the counts `--workers` shares, against about 1 µs for 10 backends and 0.1 µs for
 * round-robin (Bun 1.4.4, 2-core AMD EPYC VM busy with other jobs, so an estimate).
 */
export class LeastConnectionsSelector implements BackendSelector {
  readonly #rotation: RoundRobinSelector;
  readonly #counts: TargetCounts;
  /** Weights of backends in slow start. It is undefined while slow start is off, so that a pick then costs no more than before. */
  readonly #slowStart: SlowStartWeights | undefined;
  /** The rotation with slow start credits, which breaks ties while a window is in force. */
  readonly #slowStartTies: SlowStartRotation | undefined;
  /** The set `#positions` indexes. */
  #indexed: BackendSet | undefined;
  /** Index of each backend in `#indexed`. */
  #positions = new Map<Backend, number>();
  /** Count (or with slow start, score) of each backend of the set, read at the start of the pick under way, or -1 for one left out. */
  #snapshot = new Float64Array(0);

  /**
   * @param rotation the round-robin rotation that breaks ties. The server keeps its set current.
   * @param slowStart the weights of backends in slow start, when slow start is on.
   */
  constructor(rotation: RoundRobinSelector, counts: TargetCounts, slowStart?: SlowStartWeights) {
    this.#rotation = rotation;
    this.#counts = counts;
    this.#slowStart = slowStart;
    this.#slowStartTies = slowStart === undefined ? undefined : new SlowStartRotation(rotation, slowStart);
  }

  /** The set of the rotation. */
  get set(): BackendSet {
    return this.#rotation.set;
  }

  /** Returns the least loaded backend that `accept` takes, ties in rotation order, and moves the rotation past it. */
  next(accept: (backend: Backend) => boolean = acceptAny, candidate?: (backend: Backend) => boolean): Backend | undefined {
    const weights = this.#slowStart !== undefined && this.#slowStart.size > 0 ? this.#slowStart : undefined;
    if (weights !== undefined) {
      const ties = this.#slowStartTies!;

      return this.#pick(candidate, weights, (level) => ties.next(accept, (backend) => this.#countOf(backend) === level));
    }

    return this.#pick(candidate, undefined, (level) => this.#rotation.next((backend) => this.#countOf(backend) === level && accept(backend)));
  }

  /**
   * Returns the least loaded backend that `accept` takes, ties going to the first after `id` in
   * the set's order, without moving the rotation. Used to fail over within one client.
   */
  following(id: string, accept: (backend: Backend) => boolean, candidate?: (backend: Backend) => boolean): Backend | undefined {
    return this.#pick(candidate, undefined, (level) => this.#rotation.following(id, (backend) => this.#countOf(backend) === level && accept(backend)));
  }

  /**
   * Reads the counts of the candidates, or with `weights` their scores, then runs `pass` for each
   * count among them, lowest first, until it returns a backend.
   */
  #pick(candidate: ((backend: Backend) => boolean) | undefined, weights: SlowStartWeights | undefined, pass: (level: number) => Backend | undefined): Backend | undefined {
    const backends = this.#index(this.#rotation.set);
    const snapshot = this.#snapshot;
    if (weights === undefined) {
      for (let index = 0; index < backends.length; index++) {
        const backend = backends[index]!;
        snapshot[index] = candidate === undefined || candidate(backend) ? this.#counts.count(backend.target) : -1;
      }
    } else {
      this.#readScores(backends, candidate, weights);
    }

    for (let level = lowestAbove(snapshot, -1); level !== undefined; level = lowestAbove(snapshot, level)) {
      const backend = pass(level);
      if (backend !== undefined) {
        return backend;
      }
    }

    return undefined;
  }

  /** Sets the snapshot of each candidate to count / weight, and of the others to -1. */
  #readScores(backends: readonly Backend[], candidate: ((backend: Backend) => boolean) | undefined, weights: SlowStartWeights): void {
    const now = weights.now();
    for (let index = 0; index < backends.length; index++) {
      const backend = backends[index]!;
      const count = candidate === undefined || candidate(backend) ? this.#counts.count(backend.target) : -1;
      this.#snapshot[index] = count < 0 ? -1 : count / weights.weightOf(backend, now);
    }
  }

  #countOf(backend: Backend): number {
    return this.#snapshot[this.#positions.get(backend)!]!;
  }

  /** Indexes the backends of `set` when it is new, and returns them. */
  #index(set: BackendSet): readonly Backend[] {
    if (set !== this.#indexed) {
      this.#indexed = set;
      this.#positions = new Map(set.backends.map((backend, index) => [backend, index]));
      this.#snapshot = new Float64Array(set.size);
    }

    return set.backends;
  }
}

const acceptAny = (): boolean => true;

/** Returns the lowest count above `floor`, or undefined when there is none. */
function lowestAbove(counts: Float64Array, floor: number): number | undefined {
  let lowest: number | undefined;
  for (const count of counts) {
    if (count > floor && (lowest === undefined || count < lowest)) {
      lowest = count;
    }
  }

  return lowest;
}

import type { Backend } from "./backend.ts";
import type { BackendSelector } from "./backend-selector.ts";
import type { BackendSet } from "./backend-set.ts";
import type { RoundRobinSelector } from "./round-robin-selector.ts";
import type { SlowStartWeights } from "./slow-start.ts";

/** Slack for the float sum of weights, so that ten turns at 0.1 add up to a whole client. */
const CREDIT_EPSILON = 1e-9;

/**
 * The round-robin rotation with slow start (`balance: roundrobin`, `slowStart`): a backend in
 * slow start takes only its weight's share of the turns that reach it.
 *
 * Each turn that reaches such a backend adds its current weight to a credit, and the backend
 * takes the client only once the credit reaches 1, which the client then spends. Otherwise
 * the turn passes to the next backend in the rotation, as for a backend at its cap. At the
 * start of a window, with a weight of 0.1, that is one client in 10 of its turns. The other
 * backends share the turns it passes on, and each is still reached within one cycle. Credits
 * are per thread and need no randomness, so the order is deterministic. With `--workers`,
 * each thread gives a backend its share of the turns that thread takes.
 *
 * Every backend the rotation could hand out may be waiting for its credit, for example when
 * only backends in slow start are healthy. The first of them in rotation order then takes
 * the client, so slow start never leaves a client without a backend.
 *
 * `following`, the order of failover within one client, ignores slow start: a backend in
 * slow start is as good a failover target as any other.
 */
export class SlowStartRotation implements BackendSelector {
  readonly #rotation: RoundRobinSelector;
  readonly #weights: SlowStartWeights;
  /** Credit of each backend id in slow start. Each of its turns adds its weight, and each client it takes spends 1. */
  readonly #credits = new Map<string, number>();

  /** @param rotation the rotation whose turns this selector shares out. The server keeps its set current. */
  constructor(rotation: RoundRobinSelector, weights: SlowStartWeights) {
    this.#rotation = rotation;
    this.#weights = weights;
  }

  /** The set of the rotation. */
  get set(): BackendSet {
    return this.#rotation.set;
  }

  /**
   * Returns the next backend that `accept` takes, passing over backends in slow start that have
   * no credit, and moves the rotation past it. A backend that `candidate` leaves out gets no turn,
   * so its credit does not grow.
   */
  next(accept: (backend: Backend) => boolean = acceptAny, candidate?: (backend: Backend) => boolean): Backend | undefined {
    const weights = this.#weights;
    if (weights.size === 0) {
      if (this.#credits.size > 0) {
        this.#credits.clear();
      }

      return this.#rotation.next(candidate === undefined ? accept : (backend) => candidate(backend) && accept(backend));
    }

    const now = weights.now();
    const waiting: Backend[] = [];
    const picked = this.#rotation.next((backend) => (candidate === undefined || candidate(backend)) && this.#takesTurn(backend, weights.weightOf(backend, now), accept, waiting));
    if (picked !== undefined || waiting.length === 0) {
      return picked;
    }

    const waited = new Set(waiting);

    return this.#rotation.next((backend) => waited.has(backend) && this.#spend(backend, this.#credits.get(backend.id) ?? 0, accept));
  }

  /** Returns the backend to try after `id` for the same client, without slow start and without moving the rotation. */
  following(id: string, accept: (backend: Backend) => boolean): Backend | undefined {
    return this.#rotation.following(id, accept);
  }

  /**
   * Adds the weight of a backend that the rotation reached to its credit. Offers it to `accept`
   * when the credit makes a whole client, else adds it to `waiting` and passes it over.
   */
  #takesTurn(backend: Backend, weight: number, accept: (backend: Backend) => boolean, waiting: Backend[]): boolean {
    if (weight >= 1) {
      if (this.#credits.size > 0) {
        this.#credits.delete(backend.id);
      }

      return accept(backend);
    }

    const credit = (this.#credits.get(backend.id) ?? 0) + weight;
    if (credit < 1 - CREDIT_EPSILON) {
      this.#credits.set(backend.id, credit);
      waiting.push(backend);

      return false;
    }

    return this.#spend(backend, credit, accept);
  }

  /** Offers the backend to `accept`. A client it takes spends 1 of the credit, down to 0, and a backend that rejects it keeps at most 1. */
  #spend(backend: Backend, credit: number, accept: (backend: Backend) => boolean): boolean {
    const accepted = accept(backend);
    this.#credits.set(backend.id, accepted ? Math.max(0, credit - 1) : Math.min(credit, 1));

    return accepted;
  }
}

const acceptAny = (): boolean => true;

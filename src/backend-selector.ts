import type { Backend } from "./backend.ts";
import type { BackendSet } from "./backend-set.ts";

/**
 * Balance modes, which choose each new client's backend (`--balance`, `balance`).
 * `roundrobin` takes the backends in turn, and `leastconn` takes the one whose target has the
 * fewest connections open or dialing, with ties in turn.
 */
export const BALANCE_MODES = ["roundrobin", "leastconn"] as const;

/** One of BALANCE_MODES. */
export type BalanceMode = (typeof BALANCE_MODES)[number];

/**
 * The order in which clients try the backends of the current set, as a FailoverPlan reads it
 * (RoundRobinSelector, LeastConnectionsSelector).
 *
 * Both methods offer backends to `accept` in the selector's order and return the first one it
 * takes, or undefined when it takes none. `accept` may reserve the backend it takes, so it is
 * called at most once per backend and pick. `candidate`, when given, is a test without side
 * effects that `accept` applies too: a selector may use it to leave backends out before it
 * orders the rest.
 */
export interface BackendSelector {
  /** The set the selector currently picks from. */
  readonly set: BackendSet;
  /** Returns the next backend for a new client that `accept` takes, and moves the rotation past it. */
  next(accept?: (backend: Backend) => boolean, candidate?: (backend: Backend) => boolean): Backend | undefined;
  /** Returns the backend to try after `id` for the same client, without moving the rotation. */
  following(id: string, accept: (backend: Backend) => boolean, candidate?: (backend: Backend) => boolean): Backend | undefined;
}

import { type SlotAccess, SlotList } from "./slot-list.ts";

/** The part of a connection that the pool uses. */
export interface PooledConnection {
  /** Numeric id, unique for the life of the process. */
  readonly id: number;
  /** The target the connection's backend socket is dialled to. */
  readonly target: string;
  /** Index in the pool's list of all connections. Only ConnectionPool writes it. */
  poolSlot?: number;
  /** Index in the pool's list of its target's connections. Only ConnectionPool writes it. */
  targetSlot?: number;
  /** Closes both sockets. Its owner removes it from the pool with `ConnectionPool.delete` once the sockets are done. */
  close(reason: string): void;
}

const POOL_SLOT: SlotAccess<PooledConnection> = {
  get: (connection) => connection.poolSlot ?? -1,
  set: (connection, slot) => {
    connection.poolSlot = slot;
  },
};

const TARGET_SLOT: SlotAccess<PooledConnection> = {
  get: (connection) => connection.targetSlot ?? -1,
  set: (connection, slot) => {
    connection.targetSlot = slot;
  },
};

/**
 * The open connections, in the order they were added and grouped by target.
 *
 * Add and delete cost one Map lookup of the target. The connections are kept in SlotLists,
 * and no Map or Set gains an entry per connection, so that closed connections and deleted
 * entries are not kept in memory until a full garbage collection (see SlotList). `get` and
 * `close` by id are linear in the open connections, and so is `add` for an id below the
 * highest one added. Closing a target is linear in that target's connections. The pool only
 * indexes: a connection removes itself with `delete` when its sockets have closed.
 */
export class ConnectionPool<C extends PooledConnection = PooledConnection> {
  readonly #all = new SlotList<C>(POOL_SLOT);
  /** Highest id added so far. A larger id cannot be in the pool, so `add` looks only for smaller ones. */
  #maxId = -Infinity;
  /** Connections by target. A group that empties stays until `targets` runs, so that targets with few connections do not add and delete Map entries all the time. */
  readonly #byTarget = new Map<string, SlotList<C>>();

  /** Number of open connections. */
  get size(): number {
    return this.#all.size;
  }

  /**
   * Adds a connection.
   *
   * @throws {Error} "invariant violated" when the id is already registered.
   */
  add(connection: C): void {
    // ClientAcceptor hands out increasing ids, so the server never runs the linear search.
    if (connection.id <= this.#maxId && this.get(connection.id) !== undefined) {
      throw new Error(`invariant violated: connection ${connection.id} is already in the pool`);
    }

    this.#maxId = Math.max(this.#maxId, connection.id);
    this.#all.add(connection);
    let group = this.#byTarget.get(connection.target);
    if (group === undefined) {
      group = new SlotList<C>(TARGET_SLOT);
      this.#byTarget.set(connection.target, group);
    }
    group.add(connection);
  }

  /** Removes a connection; returns false when it was not in the pool. */
  delete(connection: C): boolean {
    if (!this.#all.delete(connection)) {
      return false;
    }

    this.#byTarget.get(connection.target)?.delete(connection);

    return true;
  }

  /** Returns the connection with this id, if open. */
  get(id: number): C | undefined {
    for (const connection of this.#all.values()) {
      if (connection.id === id) {
        return connection;
      }
    }

    return undefined;
  }

  /** Closes one connection; returns false when no connection has this id. */
  close(id: number, reason: string): boolean {
    const connection = this.get(id);
    connection?.close(reason);

    return connection !== undefined;
  }

  /** Closes every connection to a target and returns how many were closed. */
  closeTarget(target: string, reason: string): number {
    const group = this.#byTarget.get(target);
    if (group === undefined) {
      return 0;
    }

    // Copy first: close() may delete from the group while we iterate.
    const connections = group.toArray();
    for (const connection of connections) {
      connection.close(reason);
    }

    return connections.length;
  }

  /** Closes every connection that `matches` accepts and returns how many were closed. Linear in the open connections. */
  closeWhere(matches: (connection: C) => boolean, reason: string): number {
    const connections = this.#all.toArray().filter(matches);
    for (const connection of connections) {
      connection.close(reason);
    }

    return connections.length;
  }

  /** Closes every connection and returns how many were closed. */
  closeAll(reason: string): number {
    const connections = this.#all.toArray();
    for (const connection of connections) {
      connection.close(reason);
    }

    return connections.length;
  }

  /** Targets that have at least one open connection. Drops the groups of the others. */
  targets(): string[] {
    const targets: string[] = [];
    for (const [target, group] of this.#byTarget) {
      if (group.size === 0) {
        this.#byTarget.delete(target);
      } else {
        targets.push(target);
      }
    }

    return targets;
  }

  /** Number of open connections to a target. */
  countTarget(target: string): number {
    return this.#byTarget.get(target)?.size ?? 0;
  }

  /** All open connections, in the order they were added. */
  connections(): IterableIterator<C> {
    return this.#all.values();
  }
}

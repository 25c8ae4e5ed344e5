/** The part of a connection that the pool uses. */
export interface PooledConnection {
  /** Numeric id, unique for the life of the process. */
  readonly id: number;
  /** The target the connection's backend socket is dialled to. */
  readonly target: string;
  /** Closes both sockets. Its owner removes it from the pool with `ConnectionPool.delete` once the sockets are done. */
  close(reason: string): void;
}

/**
 * The open connections, indexed by connection id and grouped by target.
 *
 * One map lookup per add and delete; closing a target is linear in that target's
 * connections. The pool only indexes: a connection removes itself with `delete`
 * when its sockets have closed.
 */
export class ConnectionPool<C extends PooledConnection = PooledConnection> {
  readonly #byId = new Map<number, C>();
  readonly #byTarget = new Map<string, Set<C>>();

  /** Number of open connections. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Adds a connection.
   *
   * @throws {Error} "invariant violated" when the id is already registered.
   */
  add(connection: C): void {
    if (this.#byId.has(connection.id)) {
      throw new Error(`invariant violated: connection ${connection.id} is already in the pool`);
    }

    this.#byId.set(connection.id, connection);
    let group = this.#byTarget.get(connection.target);
    if (group === undefined) {
      group = new Set();
      this.#byTarget.set(connection.target, group);
    }
    group.add(connection);
  }

  /** Removes a connection; returns false when it was not in the pool. */
  delete(connection: C): boolean {
    if (this.#byId.get(connection.id) !== connection) {
      return false;
    }

    this.#byId.delete(connection.id);
    const group = this.#byTarget.get(connection.target);
    group?.delete(connection);
    if (group?.size === 0) {
      this.#byTarget.delete(connection.target);
    }

    return true;
  }

  /** Returns the connection with this id, if open. */
  get(id: number): C | undefined {
    return this.#byId.get(id);
  }

  /** Closes one connection; returns false when no connection has this id. */
  close(id: number, reason: string): boolean {
    const connection = this.#byId.get(id);
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
    const connections = [...group];
    for (const connection of connections) {
      connection.close(reason);
    }

    return connections.length;
  }

  /** Closes every connection that `matches` accepts and returns how many were closed. Linear in the open connections. */
  closeWhere(matches: (connection: C) => boolean, reason: string): number {
    const connections = [...this.#byId.values()].filter(matches);
    for (const connection of connections) {
      connection.close(reason);
    }

    return connections.length;
  }

  /** Closes every connection and returns how many were closed. */
  closeAll(reason: string): number {
    const connections = [...this.#byId.values()];
    for (const connection of connections) {
      connection.close(reason);
    }

    return connections.length;
  }

  /** Targets that have at least one open connection. */
  targets(): string[] {
    return [...this.#byTarget.keys()];
  }

  /** Number of open connections to a target. */
  countTarget(target: string): number {
    return this.#byTarget.get(target)?.size ?? 0;
  }

  /** All open connections, in the order they were added. */
  connections(): IterableIterator<C> {
    return this.#byId.values();
  }
}

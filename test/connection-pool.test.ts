import { expect, test } from "bun:test";
import { ConnectionPool, type PooledConnection } from "../src/connection-pool.ts";

/**
 * A stand-in for a relayed connection: the pool only indexes, so a stub that records
 * close and removes itself, as a real connection does when its sockets close, is enough.
 */
class StubConnection implements PooledConnection {
  closedWith: string | undefined;

  constructor(
    readonly id: number,
    readonly target: string,
    private readonly pool: ConnectionPool<StubConnection>,
  ) {}

  close(reason: string): void {
    this.closedWith = reason;
    this.pool.delete(this);
  }
}

function fill(pool: ConnectionPool<StubConnection>, entries: [number, string][]): Map<number, StubConnection> {
  const byId = new Map<number, StubConnection>();
  for (const [id, target] of entries) {
    const connection = new StubConnection(id, target, pool);
    pool.add(connection);
    byId.set(id, connection);
  }

  return byId;
}

test("ConnectionPool indexes by id and groups by target", () => {
  const pool = new ConnectionPool<StubConnection>();
  const connections = fill(pool, [[1, "t1"], [2, "t2"], [3, "t1"]]);

  expect(pool.size).toBe(3);
  expect(pool.get(3)).toBe(connections.get(3)!);
  expect(pool.get(4)).toBeUndefined();
  expect(pool.targets().sort()).toEqual(["t1", "t2"]);
  expect(pool.countTarget("t1")).toBe(2);
  expect(pool.countTarget("t9")).toBe(0);
  expect([...pool.connections()].map((connection) => connection.id)).toEqual([1, 2, 3]);
});

test("ConnectionPool rejects a duplicate id", () => {
  const pool = new ConnectionPool<StubConnection>();
  fill(pool, [[1, "t1"]]);

  expect(() => pool.add(new StubConnection(1, "t2", pool))).toThrow("invariant violated: connection 1 is already in the pool");
  expect(pool.countTarget("t2")).toBe(0);
});

test("ConnectionPool checks ids added out of order", () => {
  const pool = new ConnectionPool<StubConnection>();
  const connections = fill(pool, [[3, "t1"], [1, "t2"]]);

  expect(() => pool.add(new StubConnection(1, "t1", pool))).toThrow("invariant violated: connection 1 is already in the pool");
  expect(() => pool.add(new StubConnection(3, "t2", pool))).toThrow("invariant violated: connection 3 is already in the pool");
  pool.add(new StubConnection(2, "t1", pool));
  expect(pool.delete(connections.get(3)!)).toBe(true);
  // An id whose connection closed may come back.
  pool.add(new StubConnection(3, "t2", pool));
  expect([...pool.connections()].map((connection) => connection.id)).toEqual([1, 2, 3]);
  expect(pool.countTarget("t1")).toBe(1);
  expect(pool.countTarget("t2")).toBe(2);
});

test("ConnectionPool closes one connection", () => {
  const pool = new ConnectionPool<StubConnection>();
  const connections = fill(pool, [[1, "t1"], [2, "t1"]]);

  expect(pool.close(1, "admin request")).toBe(true);
  expect(connections.get(1)!.closedWith).toBe("admin request");
  expect(connections.get(2)!.closedWith).toBeUndefined();
  expect(pool.size).toBe(1);
  expect(pool.close(1, "again")).toBe(false);
  expect(pool.close(99, "unknown")).toBe(false);
});

test("ConnectionPool closes only the removed target", () => {
  const pool = new ConnectionPool<StubConnection>();
  const connections = fill(pool, [[1, "t1"], [2, "t2"], [3, "t1"], [4, "t3"], [5, "t1"]]);

  expect(pool.closeTarget("t1", "target left the backend set")).toBe(3);

  for (const id of [1, 3, 5]) {
    expect(connections.get(id)!.closedWith).toBe("target left the backend set");
  }
  for (const id of [2, 4]) {
    expect(connections.get(id)!.closedWith).toBeUndefined();
  }
  expect(pool.targets().sort()).toEqual(["t2", "t3"]);
  expect(pool.size).toBe(2);
  expect(pool.closeTarget("t1", "again")).toBe(0);
});

test("ConnectionPool closes every connection", () => {
  const pool = new ConnectionPool<StubConnection>();
  const connections = fill(pool, [[1, "t1"], [2, "t2"]]);

  expect(pool.closeAll("shutting down")).toBe(2);
  expect([...connections.values()].every((connection) => connection.closedWith === "shutting down")).toBe(true);
  expect(pool.size).toBe(0);
  expect(pool.targets()).toEqual([]);
});

test("ConnectionPool delete ignores a connection it does not hold", () => {
  const pool = new ConnectionPool<StubConnection>();
  const [kept] = fill(pool, [[1, "t1"]]).values();
  const impostor = new StubConnection(1, "t1", pool);

  expect(pool.delete(impostor)).toBe(false);
  expect(pool.get(1)).toBe(kept!);
  expect(pool.delete(kept!)).toBe(true);
  expect(pool.delete(kept!)).toBe(false);
  expect(pool.targets()).toEqual([]);
});

test("ConnectionPool closes the connections a predicate matches", () => {
  const pool = new ConnectionPool<StubConnection>();
  const connections = fill(pool, [[1, "t1"], [2, "t2"], [3, "t1"], [4, "t1"]]);

  expect(pool.closeWhere((connection) => connection.id % 2 === 1, "backend disabled")).toBe(2);

  expect(connections.get(1)!.closedWith).toBe("backend disabled");
  expect(connections.get(3)!.closedWith).toBe("backend disabled");
  expect(connections.get(2)!.closedWith).toBeUndefined();
  expect(connections.get(4)!.closedWith).toBeUndefined();
  expect(pool.countTarget("t1")).toBe(1);
  expect(pool.closeWhere(() => false, "none")).toBe(0);
  expect(pool.size).toBe(2);
});

import { expect, test } from "bun:test";
import type { Connection } from "../src/connection.ts";
import { ConnectionPool } from "../src/connection-pool.ts";
import { IDLE_TIMEOUT_REASON, IdleSweeper } from "../src/idle-sweeper.ts";
import { TrafficStats } from "../src/traffic-stats.ts";
import { FakeClock } from "./support/fake-clock.ts";

/** A pooled connection whose byte counts a test sets, recording the reason it was closed with. */
interface FakeConnection {
  id: number;
  target: string;
  bytesToBackend: number;
  bytesToClient: number;
  idleSweepBytes: number;
  idleSweepActiveAt: number;
  closedWith: string | undefined;
  close(reason: string): void;
}

function scenario(count = 1): { clock: FakeClock; pool: ConnectionPool<Connection>; stats: TrafficStats; sweeper: IdleSweeper; connections: FakeConnection[] } {
  const clock = new FakeClock();
  const pool = new ConnectionPool<Connection>();
  const stats = new TrafficStats();
  const connections: FakeConnection[] = [];
  for (let id = 1; id <= count; id++) {
    const connection: FakeConnection = {
      id,
      target: "127.0.0.1:1",
      bytesToBackend: 0,
      bytesToClient: 0,
      idleSweepBytes: -1,
      idleSweepActiveAt: 0,
      closedWith: undefined,
      close(reason) {
        this.closedWith = reason;
        pool.delete(this as unknown as Connection);
      },
    };
    connections.push(connection);
    pool.add(connection as unknown as Connection);
  }

  return { clock, pool, stats, sweeper: new IdleSweeper(pool, stats, clock), connections };
}

test("IdleSweeper sets no timer while off", () => {
  const { clock, sweeper } = scenario();

  expect(sweeper.timeoutMs).toBe(0);
  expect(clock.pending).toBe(0);
  sweeper.setTimeout(4000);
  expect(clock.pending).toBe(1);
  sweeper.setTimeout(0);
  expect(clock.pending).toBe(0);
});

test("IdleSweeper closes after the timeout and at most a quarter more", () => {
  const { clock, stats, sweeper, connections } = scenario();
  const connection = connections[0]!;
  sweeper.setTimeout(4000);

  // Sweeps run every 1000 ms. A byte moves at 1500 ms, and the sweep at 2000 ms records it.
  clock.advance(1500);
  connection.bytesToClient = 10;
  clock.advance(4499); // 5999 ms: idle 4499 ms, still open.
  expect(connection.closedWith).toBeUndefined();
  clock.advance(1); // 6000 ms: the sweep 4000 ms after the one that saw the byte.
  expect(connection.closedWith).toBe(IDLE_TIMEOUT_REASON);
  expect(stats.idleClosed).toBe(1);
});

test("IdleSweeper counts bytes in either direction as activity", () => {
  const { clock, sweeper, connections } = scenario(2);
  const [upload, download] = connections as [FakeConnection, FakeConnection];
  sweeper.setTimeout(2000);

  for (let step = 0; step < 20; step++) {
    upload.bytesToBackend++;
    download.bytesToClient++;
    clock.advance(500);
  }
  expect(upload.closedWith).toBeUndefined();
  expect(download.closedWith).toBeUndefined();

  clock.advance(2500);
  expect(upload.closedWith).toBe(IDLE_TIMEOUT_REASON);
  expect(download.closedWith).toBe(IDLE_TIMEOUT_REASON);
});

test("IdleSweeper turned on counts idle time from then", () => {
  const { clock, sweeper, connections } = scenario();
  const connection = connections[0]!;

  clock.advance(60_000); // Idle a minute with the timeout off.
  sweeper.setTimeout(2000);
  clock.advance(1999);
  expect(connection.closedWith).toBeUndefined();
  clock.advance(1);
  expect(connection.closedWith).toBe(IDLE_TIMEOUT_REASON);
});

test("IdleSweeper turned off and on again ignores the time in between", () => {
  const { clock, sweeper, connections } = scenario();
  const connection = connections[0]!;
  sweeper.setTimeout(2000);
  clock.advance(1500); // The sweeps at 500 and 1000 ms recorded the connection.

  sweeper.setTimeout(0);
  clock.advance(10_000);
  sweeper.setTimeout(2000);
  clock.advance(1999);
  expect(connection.closedWith).toBeUndefined();
  clock.advance(1);
  expect(connection.closedWith).toBe(IDLE_TIMEOUT_REASON);
});

test("IdleSweeper keeps the idle time spent across a change", () => {
  const { clock, sweeper, connections } = scenario();
  const connection = connections[0]!;
  sweeper.setTimeout(8000);

  // The first sweep, at 2000 ms, records the connection; by 7000 ms it was idle 5000 ms since.
  clock.advance(7000);
  sweeper.setTimeout(4000);
  // The next sweep, 1000 ms after the change, finds 6000 ms of idle time, more than 4000.
  clock.advance(999);
  expect(connection.closedWith).toBeUndefined();
  clock.advance(1);
  expect(connection.closedWith).toBe(IDLE_TIMEOUT_REASON);
});

test("IdleSweeper raised keeps a connection open longer", () => {
  const { clock, sweeper, connections } = scenario();
  const connection = connections[0]!;
  sweeper.setTimeout(2000);
  clock.advance(1000); // The sweep at 500 ms recorded the connection.

  // Sweeps now run every 2500 ms from 1000 ms: at 8500 ms the connection was idle 8000 ms
  // since the sweep that recorded it, and at 11,000 ms 10,500 ms.
  sweeper.setTimeout(10_000);
  clock.advance(9999);
  expect(connection.closedWith).toBeUndefined();
  clock.advance(1);
  expect(connection.closedWith).toBe(IDLE_TIMEOUT_REASON);
});

test("IdleSweeper stop cancels its timer", () => {
  const { clock, sweeper, connections } = scenario();
  sweeper.setTimeout(1000);
  sweeper.stop();

  expect(clock.pending).toBe(0);
  expect(sweeper.timeoutMs).toBe(0);
  clock.advance(10_000);
  expect(connections[0]!.closedWith).toBeUndefined();
});

import { expect, test } from "bun:test";
import { ConnectionCapLog } from "../src/connection-cap-log.ts";
import { LogLines } from "./support/log-lines.ts";

const REACHED = "admin API connection cap reached; new connections are closed at accept";
const BELOW = "admin API connections are below half the cap again";

test("ConnectionCapLog warns once at the cap", () => {
  const log = new LogLines();
  const cap = new ConnectionCapLog(log.logger, "admin API", 8);

  cap.connectionRejected();
  cap.connectionRejected();
  cap.connectionRejected();

  expect(cap.rejected).toBe(3);
  expect(log.records).toEqual([expect.objectContaining({ level: "warn", msg: REACHED, maxConnections: 8 })]);
});

test("ConnectionCapLog reports room at half the cap", () => {
  const log = new LogLines();
  const cap = new ConnectionCapLog(log.logger, "admin API", 8);
  cap.connectionRejected();
  cap.connectionRejected();

  // Closes above half the cap, as when a flood replaces each closed connection, log nothing.
  for (const open of [7, 6, 5, 7, 5]) {
    cap.connectionClosed(open);
  }
  expect(log.withMessage(BELOW)).toHaveLength(0);

  cap.connectionClosed(4);
  cap.connectionClosed(3);

  expect(log.withMessage(BELOW)).toEqual([expect.objectContaining({ level: "info", open: 4, maxConnections: 8, rejected: 2 })]);
});

test("ConnectionCapLog counts rejections per episode", () => {
  const log = new LogLines();
  const cap = new ConnectionCapLog(log.logger, "admin API", 8);
  cap.connectionRejected();
  cap.connectionClosed(0);

  cap.connectionRejected();
  cap.connectionRejected();
  cap.connectionRejected();
  cap.connectionClosed(0);

  expect(log.messages()).toEqual([REACHED, BELOW, REACHED, BELOW]);
  expect(log.withMessage(BELOW).map((record) => record.rejected)).toEqual([1, 3]);
  expect(cap.rejected).toBe(4);
});

test("ConnectionCapLog is silent below the cap", () => {
  const log = new LogLines();
  const cap = new ConnectionCapLog(log.logger, "admin API", 8);

  cap.connectionClosed(7);
  cap.connectionClosed(0);

  expect(log.records).toHaveLength(0);
  expect(cap.rejected).toBe(0);
});

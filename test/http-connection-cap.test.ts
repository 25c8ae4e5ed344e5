import { expect, test } from "bun:test";
import { httpConnectionCap, MAX_HTTP_CONNECTIONS } from "../src/http-connection-cap.ts";

test.each([
  // 1/16 of the limit, at least 4 and at most 64.
  [undefined, 64],
  [20, 4],
  [64, 4],
  [100, 6],
  [200, 12],
  [1023, 63],
  [1024, 64],
  [65_536, 64],
])("httpConnectionCap under limit %p is %d", (limit, cap) => {
  expect(httpConnectionCap(limit)).toBe(cap);
});

test("httpConnectionCap of two servers stays near an eighth of the limit", () => {
  for (let limit = 64; limit <= 4096; limit++) {
    expect(2 * httpConnectionCap(limit)).toBeLessThanOrEqual(Math.max(8, Math.floor(limit / 8)));
  }
  expect(httpConnectionCap(1 << 20)).toBe(MAX_HTTP_CONNECTIONS);
});

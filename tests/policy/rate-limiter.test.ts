/**
 * The request limiter over the in-memory store: counts per key and window,
 * Retry-After, the sweep of ended windows, and the keys clients are counted
 * under (IPv6 per /64).
 */
import { expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { MemoryRateLimitStore, RequestLimiter, limitKey } from "../../src/policy/rate-limiter";

const START = 1_000_000;

function limiter(limit: number, windowMs: number) {
  let time = START;
  const store = new MemoryRateLimitStore();
  const requests = new RequestLimiter({ store, limit, windowMs, now: () => time });
  return { store, requests, advance: (ms: number) => void (time += ms) };
}

async function rejection(promise: Promise<void>): Promise<RegistryError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    return error as RegistryError;
  }
  throw new Error("expected TOOMANYREQUESTS");
}

test("the store counts hits per key within a window, then starts a new one", async () => {
  const store = new MemoryRateLimitStore();
  expect(await store.hit("a", 1000, START)).toEqual({ count: 1, resetAt: START + 1000 });
  expect(await store.hit("a", 1000, START + 500)).toEqual({ count: 2, resetAt: START + 1000 });
  expect(await store.hit("b", 1000, START + 500)).toEqual({ count: 1, resetAt: START + 1500 });
  expect(await store.hit("a", 1000, START + 1000)).toEqual({ count: 1, resetAt: START + 2000 });
});

test("the limit passes, the next request is TOOMANYREQUESTS with Retry-After in whole seconds", async () => {
  const { requests, advance } = limiter(3, 60_000);
  for (let i = 0; i < 3; i++) await requests.check("10.0.0.1");
  advance(20_500);
  const error = await rejection(requests.check("10.0.0.1"));
  expect(error.ociCode).toBe("TOOMANYREQUESTS");
  expect(error.status).toBe(429);
  expect(error.headers).toEqual({ "retry-after": "40" }); // 39.5 s left, rounded up
  expect(error.message).toBe("too many requests: 3 per 60s allowed, retry in 40s");
  // other keys have their own count
  await requests.check("10.0.0.2");
  // still refused until the window ends, with a shrinking Retry-After
  advance(39_000);
  expect((await rejection(requests.check("10.0.0.1"))).headers["retry-after"]).toBe("1");
  advance(499);
  expect((await rejection(requests.check("10.0.0.1"))).headers["retry-after"]).toBe("1"); // never 0
  advance(1);
  await requests.check("10.0.0.1");
});

test("expired windows are swept, so memory follows the clients of about one window", async () => {
  const { store, requests, advance } = limiter(10, 1000);
  for (let i = 0; i < 100; i++) await requests.check(`10.0.${i}.1`);
  expect(store.size).toBe(100);
  advance(1000);
  await requests.check("10.1.0.1");
  expect(store.size).toBe(1);
});

test("a limiter refuses a meaningless configuration", () => {
  const store = new MemoryRateLimitStore();
  expect(() => new RequestLimiter({ store, limit: 0, windowMs: 1000 })).toThrow("at least 1");
  expect(() => new RequestLimiter({ store, limit: 1.5, windowMs: 1000 })).toThrow("whole number");
  expect(() => new RequestLimiter({ store, limit: 1, windowMs: 0 })).toThrow("window must be positive");
});

test("a store shared by several limiters counts them together (as a Redis store would)", async () => {
  let time = START;
  const store = new MemoryRateLimitStore();
  const one = new RequestLimiter({ store, limit: 2, windowMs: 1000, now: () => time });
  const two = new RequestLimiter({ store, limit: 2, windowMs: 1000, now: () => time });
  await one.check("k");
  await two.check("k");
  expect((await rejection(one.check("k"))).ociCode).toBe("TOOMANYREQUESTS");
  time += 1000;
  await two.check("k");
});

test.each([
  ["203.0.113.9", "203.0.113.9"],
  ["::ffff:203.0.113.9", "203.0.113.9"], // mapped is IPv4, never the /64 holding all of IPv4
  ["::ffff:cb00:7109", "203.0.113.9"],
  ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
  ["2001:db8:1:2::1", "2001:db8:1:2::/64"],
  ["2001:0DB8:0001:0002:ffff::9", "2001:db8:1:2::/64"],
  ["2001:db8::1", "2001:db8:0:0::/64"],
  ["::1", "0:0:0:0::/64"],
  ["fe80::1%eth0", "fe80:0:0:0::/64"],
  ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4::/64"],
  ["", ""], // unknown addresses share one key
  ["not-an-ip", "not-an-ip"],
])("limitKey(%p) is %p", (address, key) => {
  expect(limitKey(address)).toBe(key);
});

test("one /64 shares a budget, the next /64 has its own", async () => {
  const { requests } = limiter(2, 60_000);
  await requests.check(limitKey("2001:db8:0:1::a"));
  await requests.check(limitKey("2001:db8:0:1:ffff:ffff:ffff:ffff"));
  expect((await rejection(requests.check(limitKey("2001:db8:0:1::b")))).ociCode).toBe("TOOMANYREQUESTS");
  await requests.check(limitKey("2001:db8:0:2::a"));
});

/**
 * Rate limits shared by the fleet (src/fleet/rate-limits.ts) against a real
 * redis-server: "nodes" are stores in this process, each with its own Redis
 * client, behind the real RequestLimiter and LoginThrottle. Two nodes share
 * one budget; Redis paused or killed → each node enforces the limits alone
 * and no call waits on Redis; Redis back → shared again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { LoginThrottle } from "../../src/auth/login-throttle";
import { FleetRateLimitStore } from "../../src/fleet/rate-limits";
import { FleetRedis } from "../../src/fleet/redis";
import { RegistryError } from "../../src/oci/errors";
import { RequestLimiter } from "../../src/policy/rate-limiter";
import { startRedis, type Redis } from "../support/redis";

const WINDOW_MS = 60_000;
const silent = { warn: () => undefined, info: () => undefined };

let redis: Redis;
let probe: RedisClient;
const clients: FleetRedis[] = [];

beforeAll(async () => {
  redis = await startRedis();
  probe = new RedisClient(redis.url);
});

afterAll(async () => {
  for (const client of clients) client.close();
  probe.close();
  await redis.stop();
});

let keys = 0;
/** A fresh client key per test: counts of earlier tests must not interfere. */
function key(): string {
  return `10.0.0.${++keys}`;
}

/** A node: its own Redis client (asking Redis again `retryMs` after a failure), store and limiter. */
function node(limit: number, retryMs = 100) {
  const redisClient = new FleetRedis({ url: redis.url, log: silent, retryMs });
  clients.push(redisClient);
  const store = new FleetRateLimitStore(redisClient);
  return { redis: redisClient, store, limiter: new RequestLimiter({ store, limit, windowMs: WINDOW_MS }) };
}

/** The status a check ends with: "ok", or the registry error's code and Retry-After. */
async function outcome(check: Promise<unknown>): Promise<string> {
  try {
    await check;
    return "ok";
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    return `${error.ociCode} ${error.headers["retry-after"]}`;
  }
}

test("two nodes on one Redis share one budget: the request past it is refused on either node", async () => {
  const [a, b] = [node(4), node(4)];
  const k = key();
  const results = [];
  for (const n of [a, b, a, b]) results.push(await outcome(n.limiter.check(k)));
  expect(results).toEqual(["ok", "ok", "ok", "ok"]);
  expect(await outcome(a.limiter.check(k))).toMatch(/^TOOMANYREQUESTS \d+$/);
  expect(await outcome(b.limiter.check(k))).toMatch(/^TOOMANYREQUESTS \d+$/);
  expect(a.redis.state).toBe("shared");
  // One counter, under the fleet's prefix, with the window as its TTL.
  expect(await probe.get(`docxy:rate:${k}`)).toBe("6");
  const ttl = Number(await probe.send("PTTL", [`docxy:rate:${k}`]));
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(WINDOW_MS);
  // Retry-After is the shared window's end, in whole seconds.
  const retryAfter = Number((await outcome(b.limiter.check(k))).split(" ")[1]);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_MS / 1000);
});

test("concurrent hits on two nodes are counted once each: every count from 1 to N handed out exactly once", async () => {
  const [a, b] = [node(1), node(1)];
  const k = key();
  const windows = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).store.hit(k, WINDOW_MS, Date.now())));
  expect(windows.map((w) => w.count).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
});

test("a counter left without expiry gets the window on its next hit instead of counting forever", async () => {
  const a = node(10);
  const k = key();
  await probe.set(`docxy:rate:${k}`, "3");
  expect((await a.store.hit(k, WINDOW_MS, Date.now())).count).toBe(4);
  expect(Number(await probe.send("PTTL", [`docxy:rate:${k}`]))).toBeGreaterThan(0);
});

test("failed logins on one node throttle the same name on another", async () => {
  const [a, b] = [node(1), node(1)];
  const throttle = (store: FleetRateLimitStore) => new LoginThrottle({ store, perAddress: 0, perName: 2 });
  const [onA, onB] = [throttle(a.store), throttle(b.store)];
  const name = `guessed-${key()}`;
  expect(await onA.attempt("10.1.0.1", name, async () => false)).toBe(false);
  expect(await onB.attempt("10.1.0.2", name, async () => false)).toBe(false);
  let verified = 0;
  const refused = await outcome(onA.attempt("10.1.0.3", name, async () => ++verified > 0));
  expect(refused).toMatch(/^TOOMANYREQUESTS \d+$/);
  expect(verified).toBe(0); // refused before the password check ran
  // Counted under a hash of the name, which may be a mistyped password: never the name itself.
  const hashed = new Bun.CryptoHasher("sha256").update(name).digest("hex");
  expect(await probe.get(`docxy:rate:login-name:${hashed}`)).toBe("2");
  expect(((await probe.send("KEYS", ["docxy:rate:*"])) as string[]).filter((k) => k.includes(name))).toEqual([]);
});

test("Redis paused: checks answer within the call timeout and each node enforces the limit alone", async () => {
  // Not asked again during the test: the pause must outlast every timeout it causes.
  const [a, b] = [node(2, 60_000), node(2, 60_000)];
  const k = key();
  await probe.send("CLIENT", ["PAUSE", "10000", "WRITE"]);
  try {
    // Each node counts on its own: two allowed on each, the third refused on each.
    for (const n of [a, b]) {
      expect(await outcome(n.limiter.check(k))).toBe("ok");
      expect(n.redis.state).toBe("local");
      expect(await outcome(n.limiter.check(k))).toBe("ok");
      expect(await outcome(n.limiter.check(k))).toMatch(/^TOOMANYREQUESTS \d+$/);
    }
  } finally {
    await probe.send("CLIENT", ["UNPAUSE"]);
  }
});

test("Redis killed mid-window: a node keeps what it counted while shared; Redis back: the fleet shares again", async () => {
  const [a, b] = [node(3), node(3)];
  const k = key();
  expect(await outcome(a.limiter.check(k))).toBe("ok");
  expect(await outcome(a.limiter.check(k))).toBe("ok");
  await redis.kill();
  // a let two through already: one left on it; b, which saw none, has its whole budget.
  expect(await outcome(a.limiter.check(k))).toBe("ok");
  expect(a.redis.state).toBe("local");
  expect(await outcome(a.limiter.check(k))).toMatch(/^TOOMANYREQUESTS \d+$/);
  for (let i = 0; i < 3; i++) expect(await outcome(b.limiter.check(k))).toBe("ok");
  expect(await outcome(b.limiter.check(k))).toMatch(/^TOOMANYREQUESTS \d+$/);

  await redis.restart(); // empty: counting starts over, shared
  probe.close();
  probe = new RedisClient(redis.url);
  await Bun.sleep(150); // past the back-off
  const fresh = key();
  expect(await outcome(a.limiter.check(fresh))).toBe("ok");
  expect(a.redis.state).toBe("shared");
  expect(await outcome(b.limiter.check(fresh))).toBe("ok");
  expect(await outcome(b.limiter.check(fresh))).toBe("ok");
  expect(await outcome(a.limiter.check(fresh))).toMatch(/^TOOMANYREQUESTS \d+$/);
  expect(await probe.get(`docxy:rate:${fresh}`)).toBe("4");
});

/**
 * The fleet's coordination (cache/redis-coordination.ts) against a real
 * redis-server (tests/support/redis.ts): nodes are RedisCoordination objects
 * in this process, each with its own Redis client, leases and — for the
 * node that owns a fill — the real fleet route on a loopback port, so a
 * losing claim really streams the owner's bytes. Redis is then made slow,
 * killed and restarted: claims fall back to this node alone and come back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { Elysia } from "elysia";
import type { ClaimResult, FillClaim, FillInProgress } from "../../src/cache/coordination";
import { RedisCoordination } from "../../src/cache/redis-coordination";
import { FillLeases } from "../../src/fleet/lease";
import { FleetRedis } from "../../src/fleet/redis";
import { FleetSigner } from "../../src/fleet/signing";
import { fleetRoutes } from "../../src/http/routes/fleet";
import { NetworkPolicy } from "../../src/policy/network";
import { startRedis, type Redis } from "../support/redis";

const SECRET = "s".repeat(40);
const BYTES = new TextEncoder().encode("the bytes of a blob being filled");
const silent = { warn: () => undefined, info: () => undefined };

let redis: Redis;
let probe: RedisClient;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  probe = new RedisClient(redis.url);
});

afterAll(async () => {
  for (const cleanup of cleanups) cleanup();
  probe.close();
  await redis.stop();
});

let digests = 0;
/** A fresh digest per test: leases of earlier tests must not interfere. */
function digest(): string {
  return `sha256:${String(++digests).padStart(64, "0")}`;
}

/** A fill in progress that serves BYTES. */
const fill: FillInProgress = {
  size: BYTES.length,
  joinable: true,
  read: (start, end) => new Response(BYTES.slice(start, end + 1)).body!,
};

interface Node {
  redis: FleetRedis;
  coordination: RedisCoordination;
  url: string;
}

/** A node: its Redis client, leases and coordination, and the fleet route on a loopback port. */
function node(options: { ttlMs?: number; retryMs?: number; advertise?: string } = {}): Node {
  const client = new FleetRedis({ url: redis.url, log: silent, retryMs: options.retryMs });
  const signer = new FleetSigner(SECRET);
  let coordination!: RedisCoordination;
  const app = new Elysia().use(
    fleetRoutes({
      guards: { network: new NetworkPolicy({ allow: [], deny: [], trustedProxies: [] }) },
      fleet: { signer },
      cache: { ownFill: (d) => coordination.ownFill(d), blobs: { committedForPeer: async () => undefined } },
    }),
  );
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => app.handle(request) });
  const url = options.advertise ?? `http://127.0.0.1:${server.port}`;
  coordination = new RedisCoordination(new FillLeases(client, url, { ttlMs: options.ttlMs }), signer);
  cleanups.push(() => {
    client.close();
    server.stop(true);
  });
  return { redis: client, coordination, url };
}

function won(result: ClaimResult): FillClaim {
  if (!("claim" in result)) throw new Error("expected to win the claim");
  return result.claim;
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text();
}

test("concurrent claims on two nodes: one wins the lease, the other streams the winner's fill once it starts", async () => {
  const [a, b] = [node(), node()];
  const d = digest();
  const claims = [a.coordination.claim(d), b.coordination.claim(d), a.coordination.claim(d)];
  // Only the winner answers before its fill starts: the others wait on it instead of passing through.
  const first = await Promise.race(claims.map((c, i) => c.then((r) => ("claim" in r ? i : new Promise<number>(() => undefined)))));
  const results = await Promise.race([Promise.all(claims), Bun.sleep(200).then(() => "waiting")]);
  expect(results).toBe("waiting");
  const winner = won(await claims[first]!);
  winner.started(fill);
  const all = await Promise.all(claims);
  expect(all.filter((r) => "claim" in r)).toHaveLength(1);
  for (const result of all.filter((r) => !("claim" in r))) {
    const joined = (result as { joined: FillInProgress }).joined;
    expect(joined.size).toBe(BYTES.length);
    expect(await text(joined.read(0, BYTES.length - 1))).toBe(new TextDecoder().decode(BYTES));
    expect(await text(joined.read(4, 8))).toBe("bytes");
  }
  expect(await probe.get(`docxy:fill:${d}`)).toEndWith(first === 1 ? b.url : a.url);
  winner.release();
});

test("a lease is renewed while its fill runs and deleted when it settles", async () => {
  const a = node({ ttlMs: 300 });
  const d = digest();
  const claim = won(await a.coordination.claim(d));
  claim.started(fill);
  await Bun.sleep(900); // three TTLs: only renewals keep it
  expect(await probe.get(`docxy:fill:${d}`)).toEndWith(a.url);
  expect(Number(await probe.send("PTTL", [`docxy:fill:${d}`]))).toBeGreaterThan(0);
  claim.release();
  for (let i = 0; i < 100 && (await probe.exists(`docxy:fill:${d}`)); i++) await Bun.sleep(10);
  expect(await probe.exists(`docxy:fill:${d}`)).toBe(false);
  expect("claim" in (await node().coordination.claim(d))).toBe(true);
});

test("a lease whose node stopped renewing expires: until then others pass through, then one claims it", async () => {
  // Its node still answers but has no such fill (it failed there), and its renewals have stopped.
  const quiet = node();
  const stopped = new FleetRedis({ url: redis.url, log: silent });
  const d = digest();
  expect("won" in (await new FillLeases(stopped, quiet.url, { ttlMs: 400 }).take(d))!).toBe(true);
  stopped.close();
  const b = node();
  expect(await b.coordination.claim(d)).toEqual({ joined: undefined });
  for (let i = 0; i < 100 && (await probe.exists(`docxy:fill:${d}`)); i++) await Bun.sleep(10);
  const claim = won(await b.coordination.claim(d));
  expect(await probe.get(`docxy:fill:${d}`)).toEndWith(b.url);
  claim.release();
});

test("a lease whose node does not answer any more is dropped and claimed at once, long before it would expire", async () => {
  const dead = node({ advertise: "http://127.0.0.1:9" }); // nothing listens there
  const d = digest();
  won(await dead.coordination.claim(d));
  const b = node();
  const claim = won(await b.coordination.claim(d));
  expect(await probe.get(`docxy:fill:${d}`)).toEndWith(b.url);
  claim.release();
});

test("a committed fill keeps pointing the fleet at its node for a while; that node itself takes its old lease over", async () => {
  const a = node({ ttlMs: 300 });
  const d = digest();
  const claim = won(await a.coordination.claim(d));
  claim.started(fill);
  claim.release(true);
  for (let i = 0; i < 100 && Number(await probe.send("PTTL", [`docxy:fill:${d}`])) < 1000; i++) await Bun.sleep(10);
  expect(Number(await probe.send("PTTL", [`docxy:fill:${d}`]))).toBeGreaterThan(1000); // the 60 s grace, not the 300 ms TTL
  expect(await node().coordination.claim(d)).toEqual({ joined: undefined }); // a's store has no such blob: pass through
  const again = won(await a.coordination.claim(d));
  again.release();
});

test("Redis too slow to answer: the claim is this node's alone, local clients still coalesce", async () => {
  const a = node({ retryMs: 100 });
  await a.redis.send("PING", []);
  expect(a.redis.state).toBe("shared");
  const pause = probe.send("CLIENT", ["PAUSE", "1500", "ALL"]);
  await pause;
  const d = digest();
  const claim = won(await a.coordination.claim(d)); // within the call timeout, not after the pause
  expect(a.redis.state).toBe("local");
  const second = a.coordination.claim(d);
  claim.started(fill);
  expect(await second).toEqual({ joined: fill });
  claim.release();
  await probe.send("CLIENT", ["UNPAUSE"]);
});

test("Redis killed: claims fall back to this node at once; restarted: the fleet shares leases again", async () => {
  const a = node({ retryMs: 100 });
  const d = digest();
  won(await a.coordination.claim(d)).release();
  expect(a.redis.state).toBe("shared");
  await redis.kill();
  const local = won(await a.coordination.claim(d));
  expect(a.redis.state).toBe("local");
  local.release();
  await redis.restart();
  await Bun.sleep(150); // past the back-off
  const shared = won(await a.coordination.claim(d));
  expect(a.redis.state).toBe("shared");
  const fresh = new RedisClient(redis.url);
  expect(await fresh.get(`docxy:fill:${d}`)).toEndWith(a.url);
  shared.release();
  fresh.close();
});

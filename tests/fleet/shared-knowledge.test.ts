/**
 * What the fleet's nodes tell each other (src/fleet/shared-knowledge.ts) and
 * "one node revalidates" (src/cache/tag-freshness.ts) against a real
 * redis-server: "nodes" are objects in this process, each with its own Redis
 * client and its own SQLite index. Round trips between two nodes, TTLs
 * honoured, no raw Authorization anywhere in Redis, one revalidation task for
 * concurrent callers (on one node and across nodes), the fallback when the
 * claimant never answers, and Redis killed: nothing found, nothing thrown.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TagKey, TagAnswer } from "../../src/cache/shared-knowledge";
import { SqliteIndex } from "../../src/cache/sqlite-index";
import { TagFreshness } from "../../src/cache/tag-freshness";
import { FleetRedis } from "../../src/fleet/redis";
import { FleetSharedKnowledge } from "../../src/fleet/shared-knowledge";
import { waitFor } from "../support/cache/harness";
import { startRedis, type Redis } from "../support/redis";

const SECRET = "k".repeat(40);
const silent = { warn: () => undefined, info: () => undefined };
const DIGEST = `sha256:${"a".repeat(64)}`;
const MINUTE = 60_000;

let redis: Redis;
let probe: RedisClient;
const dir = mkdtempSync(join(tmpdir(), "docxy-shared-knowledge-"));
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  probe = new RedisClient(redis.url);
});

afterAll(async () => {
  for (const cleanup of cleanups) cleanup();
  probe.close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A node: its own Redis client, knowledge and index. */
function node(options: { linkTtlMs?: number; claimMs?: number; waitMs?: number } = {}) {
  const client = new FleetRedis({ url: redis.url, log: silent, retryMs: 100 });
  const index = SqliteIndex.open(join(dir, `${crypto.randomUUID()}.sqlite`));
  cleanups.push(() => client.close(), () => index.close());
  const knowledge = new FleetSharedKnowledge(client, SECRET, options);
  return { client, index, knowledge, freshness: new TagFreshness(index, knowledge, options.waitMs) };
}

let tags = 0;
function tagKey(): TagKey {
  return { upstream: "dockerhub", repository: "library/alpine", tag: `t${++tags}`, acceptKey: "*" };
}

function answer(fetchedAt = Date.now()): TagAnswer {
  return { digest: DIGEST, mediaType: "application/vnd.oci.image.index.v1+json", size: 1234, fetchedAt };
}

test("what one node publishes the other finds: a tag's answer, publicness, a link, a proof", async () => {
  const [a, b] = [node(), node()];
  const key = tagKey();
  const tag = answer();
  a.knowledge.publishTag(key, tag, MINUTE);
  a.knowledge.publishAccess("dockerhub", "library/alpine", { public: true, checkedAt: Date.now() }, MINUTE);
  a.knowledge.publishLink("dockerhub", "library/alpine", DIGEST);
  a.knowledge.publishProof("some-proof-key", tag.fetchedAt, MINUTE);
  await waitFor(async () => (await b.knowledge.proof("some-proof-key")) !== undefined, "the proof");
  expect(await b.knowledge.tag(key)).toEqual(tag);
  expect(await b.knowledge.tag({ ...key, acceptKey: "none" })).toBeUndefined(); // another accept class
  expect(await b.knowledge.access("dockerhub", "library/alpine")).toEqual({ public: true, checkedAt: expect.any(Number) });
  expect(await b.knowledge.access("dockerhub", "library/other")).toBeUndefined();
  expect(await b.knowledge.hasLink("dockerhub", "library/alpine", DIGEST)).toBe(true);
  expect(await b.knowledge.hasLink("dockerhub", "library/other", DIGEST)).toBe(false);
  expect(await b.knowledge.proof("some-proof-key")).toBe(tag.fetchedAt);
  expect(await b.knowledge.proof("another-proof-key")).toBeUndefined();
  expect(b.client.state).toBe("shared");
});

test("keys expire with the knowledge: a tag's TTL counts from fetchedAt, a link's from the constructor option", async () => {
  const a = node({ linkTtlMs: 300 });
  const [fresh, old] = [tagKey(), tagKey()];
  a.knowledge.publishTag(fresh, answer(), 300);
  a.knowledge.publishTag(old, answer(Date.now() - 400), 300); // already stale: never written
  a.knowledge.publishLink("dockerhub", "acme/short", DIGEST);
  a.knowledge.publishAccess("dockerhub", "acme/short", { public: false, checkedAt: Date.now() }, 300);
  await waitFor(async () => (await a.knowledge.tag(fresh)) !== undefined, "the fresh answer");
  expect(await a.knowledge.hasLink("dockerhub", "acme/short", DIGEST)).toBe(true);
  expect(await a.knowledge.access("dockerhub", "acme/short")).toMatchObject({ public: false });
  expect(await a.knowledge.tag(old)).toBeUndefined();
  const pttl = Number(await probe.send("PTTL", [`docxy:tag:dockerhub/library/alpine:${fresh.tag}#*`]));
  expect(pttl).toBeGreaterThan(0);
  expect(pttl).toBeLessThanOrEqual(300);
  await waitFor(async () => (await a.knowledge.tag(fresh)) === undefined, "the answer to expire");
  await waitFor(async () => !(await a.knowledge.hasLink("dockerhub", "acme/short", DIGEST)), "the link to expire");
  await waitFor(async () => (await a.knowledge.access("dockerhub", "acme/short")) === undefined, "the access to expire");
});

test("a proof is kept under a keyed hash: no Redis key or value holds the Authorization, its token, or its plain sha256", async () => {
  const a = node();
  const token = `secret-token-${crypto.randomUUID()}`;
  const authorization = `Bearer ${token}`;
  const sha = new Bun.CryptoHasher("sha256").update(authorization).digest("hex");
  // The access gate's proof key: a sha256 of the Authorization and the repository.
  a.knowledge.publishProof(`${sha} dockerhub/acme/private`, Date.now(), MINUTE);
  await waitFor(async () => (await a.knowledge.proof(`${sha} dockerhub/acme/private`)) !== undefined, "the proof");
  const keys = (await probe.send("KEYS", ["*"])) as string[];
  expect(keys.filter((k) => k.startsWith("docxy:proof:")).length).toBeGreaterThan(0);
  for (const key of keys) {
    const type = await probe.send("TYPE", [key]);
    const value = type === "string" ? String(await probe.get(key)) : "";
    for (const secret of [authorization, token, sha]) {
      expect(key).not.toContain(secret);
      expect(value).not.toContain(secret);
    }
  }
});

test("concurrent revalidations of one tag on one node: one task runs, the others read its answer", async () => {
  const a = node();
  const key = tagKey();
  let runs = 0;
  const found = await Promise.all(Array.from({ length: 5 }, () => revalidate(a, key, () => runs++)));
  expect(runs).toBe(1);
  expect(found).toEqual(Array(5).fill(DIGEST));
});

test("concurrent revalidations of one tag on two nodes: one task runs in the fleet, both indexes get its answer", async () => {
  const [a, b] = [node(), node()];
  const key = tagKey();
  let runs = 0;
  const found = await Promise.all([a, b, a, b].map((n) => revalidate(n, key, () => runs++)));
  expect(runs).toBe(1);
  expect(found).toEqual(Array(4).fill(DIGEST));
  // A third node coming later adopts the answer with its age: no task at all.
  const c = node();
  expect(await revalidate(c, key, () => runs++)).toBe(DIGEST);
  expect(runs).toBe(1);
  expect(c.index.getTag(key.upstream, key.repository, key.tag, key.acceptKey)?.fetchedAt).toBe(
    a.index.getTag(key.upstream, key.repository, key.tag, key.acceptKey)?.fetchedAt ?? b.index.getTag(key.upstream, key.repository, key.tag, key.acceptKey)?.fetchedAt,
  );
});

test("a claimant that never answers: the other node waits its bounded while, then revalidates itself", async () => {
  const [a, b] = [node({ waitMs: 200 }), node({ waitMs: 200 })];
  const key = tagKey();
  const claim = await a.knowledge.claimTag(key); // a node that took the claim, then died
  expect(claim).toBeDefined();
  let runs = 0;
  expect(await revalidate(b, key, () => runs++)).toBe(DIGEST);
  expect(runs).toBe(1);
  claim!.release();
});

test("Redis killed: lookups find nothing, publishing does not throw, every claim is the node's own", async () => {
  const [a, b] = [node(), node()];
  const key = tagKey();
  await redis.kill();
  a.knowledge.publishTag(key, answer(), MINUTE);
  a.knowledge.publishLink("dockerhub", "acme/down", DIGEST);
  a.knowledge.publishAccess("dockerhub", "acme/down", { public: true, checkedAt: Date.now() }, MINUTE);
  a.knowledge.publishProof("proof-while-down", Date.now(), MINUTE);
  expect(await b.knowledge.tag(key)).toBeUndefined();
  expect(await b.knowledge.access("dockerhub", "acme/down")).toBeUndefined();
  expect(await b.knowledge.hasLink("dockerhub", "acme/down", DIGEST)).toBe(false);
  expect(await b.knowledge.proof("proof-while-down")).toBeUndefined();
  expect(b.client.state).toBe("local");
  // Each node revalidates alone, as a single node does.
  let runs = 0;
  const found = await Promise.all([a, b].map((n) => revalidate(n, key, () => runs++)));
  expect(runs).toBe(2);
  expect(found).toEqual([DIGEST, DIGEST]);
  await redis.restart();
});

/** What ManifestCache.byTag does around its HEAD: a turn, the index read again, the task only when still stale. */
async function revalidate(n: ReturnType<typeof node>, key: TagKey, task: () => void): Promise<string | undefined> {
  const ttlMs = MINUTE;
  const end = await n.freshness.turn(key, ttlMs);
  try {
    const known = n.index.getTag(key.upstream, key.repository, key.tag, key.acceptKey);
    if (known && Date.now() - known.fetchedAt < ttlMs) return known.digest;
    task();
    await Bun.sleep(100); // the HEAD upstream
    const { digest, mediaType, size } = answer();
    n.freshness.record(key, { digest, mediaType, size }, ttlMs);
    return digest;
  } finally {
    end();
  }
}

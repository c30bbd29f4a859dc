/**
 * The node filling a blob for the fleet is SIGKILLed mid-fill: the clients
 * that other nodes were streaming it to must get an error (a cut
 * connection), never a short body that looks complete, and the next pull
 * takes the dead node's lease over and works. The upstream is the fake registry (tests/support/cache/fake-registry.ts),
 * which sends the first download half the blob and then waits, so the fill
 * is certainly in progress when its node dies; later downloads get it whole.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readFully, sha256 } from "../../support/cache/harness";
import { startFakeRegistry, type FakeRegistry } from "../../support/cache/fake-registry";
import type { Docxy } from "../../support/docxy-process";
import { getBlob, startNode } from "../../support/fleet";
import { startRedis, type Redis } from "../../support/redis";

const BLOB = randomBytes(4 * 1024 * 1024);
const DIGEST = sha256(BLOB);
const HALF = BLOB.length / 2;
const REPOSITORY = "library/killed";

let fake: FakeRegistry;
let redis: Redis;
let nodes: Docxy[] = [];
let blobGets = 0;
let endFirstDownload!: () => void;
const firstDownloadEnds = new Promise<void>((resolve) => (endFirstDownload = resolve));

beforeAll(async () => {
  fake = await startFakeRegistry(async (request, reply) => {
    if (!request.path.endsWith(`/blobs/${DIGEST}`)) return reply.send(404, { "content-type": "application/json" }, "{}");
    const headers = { "content-type": "application/octet-stream", "content-length": String(BLOB.length), "docker-content-digest": DIGEST };
    if (request.method === "HEAD") return reply.send(200, headers);
    if (++blobGets > 1) return reply.send(200, headers, BLOB);
    reply.head(200, headers);
    await reply.write(BLOB.subarray(0, HALF));
    await firstDownloadEnds; // until the test ends: the owner dies before
    reply.cut();
  });
  redis = await startRedis();
  nodes = await Promise.all([0, 1, 2].map(() => startNode(fake.toml, redis.url)));
}, 60_000);

afterAll(async () => {
  endFirstDownload();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([fake?.stop(), redis?.stop()]);
});

type BodyReader = { read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }> };

/** Reads until at least one byte arrived; the reader keeps the rest. */
async function firstBytes(response: Response): Promise<{ reader: BodyReader; received: number }> {
  const reader: BodyReader = response.body!.getReader();
  const { value } = await reader.read();
  return { reader, received: value?.length ?? 0 };
}

/** The rest of a body, or the error that cut it. */
async function rest(reader: BodyReader): Promise<{ bytes: number; error?: unknown }> {
  let bytes = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { bytes };
      bytes += value.length;
    }
  } catch (error) {
    return { bytes, error };
  }
}

test("the owner node killed mid-fill: the followers' clients are cut off, never handed a short body as whole; the next pull takes over", async () => {
  const [owner, ...followers] = nodes as [Docxy, Docxy, Docxy];
  const first = await getBlob(owner, REPOSITORY, DIGEST);
  expect(first.headers.get("x-cache")).toBe("MISS");
  await firstBytes(first);

  const following = await Promise.all(followers.map((n) => getBlob(n, REPOSITORY, DIGEST)));
  expect(following.map((r) => [r.status, r.headers.get("x-cache"), r.headers.get("content-length")])).toEqual(
    followers.map(() => [200, "COALESCED", String(BLOB.length)]),
  );
  const started = await Promise.all(following.map(firstBytes));
  expect(started.every((s) => s.received > 0)).toBe(true);

  process.kill(owner.pid, "SIGKILL");
  const ends = await Promise.all(started.map((s) => rest(s.reader)));
  for (const [i, end] of ends.entries()) {
    expect(end.error).toBeDefined(); // a cut connection, not a clean end
    expect(started[i]!.received + end.bytes).toBeLessThan(BLOB.length);
  }

  // The next pull finds the dead node's lease, cannot reach it, and takes the fill over at once
  // (one more upstream download); the last node follows the new owner.
  const cache: (string | null)[] = [];
  for (const node of followers) {
    const response = await getBlob(node, REPOSITORY, DIGEST);
    cache.push(response.headers.get("x-cache"));
    const again = await readFully(response);
    expect(again.error).toBeUndefined();
    expect(sha256(again.bytes)).toBe(DIGEST);
  }
  expect(cache).toEqual(["MISS", "COALESCED"]);
  expect(blobGets).toBe(2);
}, 60_000);

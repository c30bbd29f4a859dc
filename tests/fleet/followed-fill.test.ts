/**
 * A follower node fans one stream from the owner out to its clients
 * (src/fleet/followed-fill.ts), against a real redis-server: the owner is a
 * RedisCoordination with a real Fill behind the real fleet route on a
 * loopback port (its GETs counted), the follower a RedisCoordination with a
 * follow target in a temp directory.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Elysia } from "elysia";
import type { FillInProgress } from "../../src/cache/coordination";
import { Fill } from "../../src/cache/fill";
import { FsStorage } from "../../src/cache/fs-storage";
import { RedisCoordination } from "../../src/cache/redis-coordination";
import { followPeers } from "../../src/fleet/followed-fill";
import { FillLeases } from "../../src/fleet/lease";
import { FLEET_FILLS_PATH } from "../../src/fleet/peer-fill";
import { FleetRedis } from "../../src/fleet/redis";
import { FleetSigner } from "../../src/fleet/signing";
import { fleetRoutes } from "../../src/http/routes/fleet";
import { NetworkPolicy } from "../../src/policy/network";
import { FileSender } from "../../src/server/file-sender";
import { nodeHandler } from "../../src/server/node-bridge";
import { startRedis, type Redis } from "../support/redis";

const SECRET = "s".repeat(40);
const CLIENTS = 8;
const silent = { warn: () => undefined, info: () => undefined };

let redis: Redis;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const cleanup of cleanups) cleanup();
  await redis.stop();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "docxy-follow-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function blob(size: number): { bytes: Uint8Array; digest: string } {
  const bytes = crypto.getRandomValues(new Uint8Array(size));
  return { bytes, digest: `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}` };
}

function sha256(bytes: ArrayBuffer): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

/** The owner: it wins the lease and fills from `body` (a real Fill), served on its fleet route; its GETs there are counted. */
async function owner(digest: string, size: number, body: ReadableStream<Uint8Array>) {
  const client = new FleetRedis({ url: redis.url, log: silent });
  const signer = new FleetSigner(SECRET);
  let coordination!: RedisCoordination;
  const app = new Elysia().use(
    fleetRoutes({
      guards: { network: new NetworkPolicy({ allow: [], deny: [], trustedProxies: [] }) },
      fleet: { signer },
      cache: { ownFill: (d) => coordination.ownFill(d), blobs: { committedForPeer: async () => undefined } },
    }),
  );
  const counted = { gets: 0 };
  // Through node:http as in production: Bun.serve would drop the Content-Length a follower checks.
  const handle = (request: Request) => {
    if (request.method === "GET" && new URL(request.url).pathname.startsWith(FLEET_FILLS_PATH)) counted.gets++;
    return app.handle(request);
  };
  const server = http.createServer(nodeHandler(handle, () => undefined, new FileSender(), 1000));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  coordination = new RedisCoordination(new FillLeases(client, `http://127.0.0.1:${port}`), signer);
  const claimed = await coordination.claim(digest);
  if (!("claim" in claimed)) throw new Error("the owner must win the lease");
  const storage = await FsStorage.open(tempDir());
  const fill = new Fill({
    digest,
    size,
    body,
    temp: await storage.begin(),
    storage,
    continueWithoutReaders: true,
    onSettled: ({ committed }) => claimed.claim.release(committed),
  });
  claimed.claim.started(fill);
  void fill.start();
  cleanups.push(() => {
    client.close();
    server.closeAllConnections();
    server.close();
  });
  /** Kills the owner: its connections are cut and nothing answers any more. */
  const die = () => {
    server.closeAllConnections();
    server.close();
  };
  return { counted, die };
}

/** The follower: its own coordination, fanning followed fills out through `storage`. */
async function follower(keep: boolean) {
  const client = new FleetRedis({ url: redis.url, log: silent });
  cleanups.push(() => client.close());
  const storage = await FsStorage.open(tempDir());
  const committed: string[] = [];
  const follow = followPeers({ storage, keep, continueWithoutReaders: false, committed: (digest) => committed.push(digest) });
  const coordination = new RedisCoordination(new FillLeases(client, "http://127.0.0.1:9"), new FleetSigner(SECRET), follow);
  return { coordination, storage, committed };
}

/** CLIENTS claims on the follower at once: every one joins the same fill. */
async function joinAll(coordination: RedisCoordination, digest: string): Promise<FillInProgress[]> {
  const results = await Promise.all(Array.from({ length: CLIENTS }, () => coordination.claim(digest)));
  return results.map((result) => {
    if (!("joined" in result) || !result.joined) throw new Error("expected to join the owner's fill");
    return result.joined;
  });
}

for (const keep of [true, false]) {
  test(`${CLIENTS} clients on a follower make ONE stream from the owner; every body hashes to the digest (${keep ? "own store" : "shared store"})`, async () => {
    const { bytes, digest } = blob(3 * 1024 * 1024 + 17);
    // Half now, the rest once the follower's clients are in: the fill is still running when they ask.
    let push!: ReadableStreamDefaultController<Uint8Array>;
    const source = new ReadableStream<Uint8Array>({ start: (controller) => void (push = controller) });
    push.enqueue(bytes.slice(0, 1024 * 1024));
    const { counted } = await owner(digest, bytes.length, source);
    const node = await follower(keep);
    const joined = await joinAll(node.coordination, digest);
    push.enqueue(bytes.slice(1024 * 1024));
    push.close();
    expect(new Set(joined).size).toBe(1);
    const bodies = await Promise.all(joined.map((fill) => new Response(fill.read(0, bytes.length - 1)).arrayBuffer()));
    for (const body of bodies) expect(sha256(body)).toBe(digest);
    expect(counted.gets).toBe(1);
    if (keep) {
      expect(node.committed).toEqual([digest]);
      expect((await node.storage.open(digest))?.size).toBe(bytes.length);
    } else {
      // The owner commits to the shared store: the follower's copy goes once its readers are done.
      for (let i = 0; i < 100 && (await node.storage.open(digest)); i++) await Bun.sleep(10);
      expect(await node.storage.open(digest)).toBeUndefined();
    }
    expect(node.coordination.isFilling(digest)).toBe(false); // the local entry ended with the fan-out
  });
}

test("the owner dies mid-stream: every client of the follower errors, none gets a complete-looking body", async () => {
  const { bytes, digest } = blob(2 * 1024 * 1024);
  let push!: ReadableStreamDefaultController<Uint8Array>;
  const source = new ReadableStream<Uint8Array>({ start: (controller) => void (push = controller) });
  push.enqueue(bytes.slice(0, 1024 * 1024));
  const { counted, die } = await owner(digest, bytes.length, source);
  const node = await follower(true);
  const joined = await joinAll(node.coordination, digest);
  const received = joined.map(() => 0);
  const reads = joined.map(async (fill, i) => {
    const reader = fill.read(0, bytes.length - 1).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return "complete";
      received[i]! += value.length;
    }
  });
  for (let i = 0; i < 200 && received.some((n) => n < 1024 * 1024 - 1); i++) await Bun.sleep(10);
  expect(received.every((n) => n > 0)).toBe(true);
  die(); // the owner is gone, its fill never finishes
  const outcomes = await Promise.allSettled(reads);
  for (const outcome of outcomes) expect(outcome.status).toBe("rejected");
  expect(received.every((n) => n < bytes.length)).toBe(true);
  expect(counted.gets).toBe(1);
  expect(node.committed).toEqual([]);
  expect(await node.storage.open(digest)).toBeUndefined();
  expect(node.coordination.isFilling(digest)).toBe(false);
});

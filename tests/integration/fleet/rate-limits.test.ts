/**
 * `[limits] requests_per_minute` across a fleet: three docxy binaries on one
 * real redis-server, one client spreading its requests over them. The
 * budget is the fleet's: the request past it is refused with registry JSON
 * and Retry-After on whichever node it lands, and on the others after it.
 * Redis killed: every node goes on enforcing the limit alone, none hangs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Docxy } from "../../support/docxy-process";
import { startNode } from "../../support/fleet";
import { startRedis, type Redis } from "../../support/redis";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const LIMIT = 5;

let upstream: Upstream;
let redis: Redis;
let nodes: Docxy[] = [];

beforeAll(async () => {
  [upstream, redis] = await Promise.all([startUpstream(), startRedis()]);
  // Loopback is a trusted proxy so the Redis test can be a client of its own (X-Forwarded-For);
  // requests without the header are counted under 127.0.0.1.
  const config = `${registryToml(upstream)}[limits]\nrequests_per_minute = ${LIMIT}\n[access]\ntrusted_proxies = ["127.0.0.1/32"]\n`;
  nodes = await Promise.all([0, 1, 2].map(() => startNode(config, redis.url)));
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([upstream?.stop(), redis?.stop()]);
});

function ping(node: Docxy, client?: string): Promise<Response> {
  return fetch(`${node.url}/v2/`, { headers: client ? { "x-forwarded-for": client } : {} });
}

async function expectTooMany(response: Response): Promise<void> {
  expect(response.status).toBe(429);
  expect(response.headers.get("content-type")).toContain("application/json");
  const retryAfter = Number(response.headers.get("retry-after"));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  const body = (await response.json()) as { errors: { code: string }[] };
  expect(body.errors.map((e) => e.code)).toEqual(["TOOMANYREQUESTS"]);
}

test("one client's requests spread over three nodes: the one past the limit is refused, then on every node", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT; i++) {
    const response = await ping(nodes[i % 3]!);
    statuses.push(response.status);
    await response.body?.cancel();
  }
  expect(statuses.filter((s) => s === 429)).toEqual([]);
  // Request LIMIT + 1 lands on a node that alone saw fewer than LIMIT requests.
  await expectTooMany(await ping(nodes[LIMIT % 3]!));
  for (const node of nodes) await expectTooMany(await ping(node));
  expect(nodes.map((n) => n.log()).join("")).not.toContain("Redis unavailable");
}, 30_000);

test("Redis killed: each node enforces the limit alone, answering without waiting on Redis", async () => {
  await redis.kill();
  const client = "10.7.0.1";
  for (const node of nodes) {
    for (let i = 0; i < LIMIT; i++) {
      const response = await ping(node, client);
      expect(response.status).not.toBe(429);
      await response.body?.cancel();
    }
    await expectTooMany(await ping(node, client));
  }
  // The counts were each node's own: every node said it lost Redis.
  for (const node of nodes) expect(node.log()).toContain("Redis unavailable");
}, 30_000);

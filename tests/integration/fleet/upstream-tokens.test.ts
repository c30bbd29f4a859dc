/**
 * docxy's own upstream account across a fleet: two docxy binaries on one
 * real redis-server pull a private image for anonymous clients with a
 * configured account, against the real test registry and token server. The
 * token the first node fetched serves the second: the token server sees one
 * login for the scope, not one per node. Redis holds no bearer token.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import type { Docxy } from "../../support/docxy-process";
import { startNode } from "../../support/fleet";
import { sha256 } from "../../support/proxied-upstream";
import { startRedis, type Redis } from "../../support/redis";
import { skopeoOk } from "../../support/skopeo";
import { startUpstream, upstreamEntryToml, type Upstream } from "../../support/upstream";

const BOT_PASSWORD = "bot-token-of-the-fleet-token-test";

let upstream: Upstream;
let redis: Redis;
let nodes: Docxy[] = [];

beforeAll(async () => {
  [upstream, redis] = await Promise.all([startUpstream({ onlyThroughProxy: true, users: { hubbot: BOT_PASSWORD } }), startRedis()]);
  const registry = upstreamEntryToml(upstream, "dockerhub", `credentials = [{ username = "hubbot", password = "${BOT_PASSWORD}" }]\n`);
  nodes = await Promise.all([0, 1].map(() => startNode(registry, redis.url)));
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([upstream?.stop(), redis?.stop()]);
});

const logins = () => upstream.tokenLog.filter((r) => r.path === "/token" && r.query.some(([k, v]) => k === "scope" && v === "repository:private/secret:pull"));

test("a private image pulled through one node, then another: one login for the fleet, and Redis holds no token", async () => {
  for (const node of nodes) {
    const raw = await skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://${new URL(node.url).host}/private/secret:latest`);
    expect(sha256(new TextEncoder().encode(raw))).toBe(upstream.images.secret.digest);
  }
  expect(logins().map((r) => r.user)).toEqual(["hubbot"]);

  const probe = new RedisClient(redis.url);
  try {
    const keys = (await probe.send("KEYS", ["docxy:token:*"])) as string[];
    expect(keys.length).toBeGreaterThanOrEqual(1);
    const values = await Promise.all(keys.map((key) => probe.get(key)));
    for (const value of values) {
      expect(value).not.toMatch(/bearer|hubbot/i);
      // A JWT's header and claims are base64url JSON; sealed bytes are not.
      expect(value!.split(".").filter(isJson)).toEqual([]);
    }
  } finally {
    probe.close();
  }
  for (const node of nodes) expect(node.log()).not.toContain(BOT_PASSWORD);
}, 60_000);

function isJson(part: string): boolean {
  try {
    JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return true;
  } catch {
    return false;
  }
}

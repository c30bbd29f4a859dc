/**
 * docxy's own upstream tokens shared by a fleet (src/fleet/upstream-tokens.ts):
 * nodes are docxy's services built in this process from a `[fleet]` config,
 * each with its own Redis client, against a real redis-server and the real
 * test registry's token server, whose log shows who asked. One node fetching
 * a token serves the others; Redis holds it only encrypted; a node with
 * another secret, or without Redis, fetches its own.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import type { Services } from "../../src/services";
import { startRedis, type Redis } from "../support/redis";
import { inProcessServices } from "../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../support/upstream";

const SECRET = "the-fleet-secret-of-the-token-tests-0123";
const BOT_PASSWORD = "bot-token-never-in-redis";

let upstream: Upstream;
let redis: Redis;
let probe: RedisClient;
const nodes: Services[] = [];

beforeAll(async () => {
  [upstream, redis] = await Promise.all([startUpstream({ users: { hubbot: BOT_PASSWORD } }), startRedis()]);
  probe = new RedisClient(redis.url);
}, 60_000);

afterAll(async () => {
  for (const node of nodes) node.fleet?.close();
  probe.close();
  await Promise.all([upstream?.stop(), redis?.stop()]);
});

async function node(secret = SECRET): Promise<Services> {
  const credentials = `credentials = [{ username = "hubbot", password_env = "HUB_TOKEN" }]\n`;
  const fleet = `[fleet]\nredis_url = "${redis.url}"\nadvertise_url = "http://127.0.0.1:9"\nsecret = "${secret}"\n`;
  const { services } = await inProcessServices(`${upstreamEntryToml(upstream, "dockerhub", credentials)}${fleet}`, { HUB_TOKEN: BOT_PASSWORD });
  nodes.push(services);
  return services;
}

/** The Authorization header `services` pulls `repository` with, as docxy. */
async function authorize(services: Services, repository: string): Promise<string> {
  const { header } = await services.upstreamAuth.authorize(services.upstreams.byName("dockerhub")!, repository);
  return header!;
}

const tokenRequests = (repository: string) =>
  upstream.tokenLog.filter((r) => r.path === "/token" && r.query.some(([k, v]) => k === "scope" && v === `repository:${repository}:pull`));

test("a token one node fetched serves another node: one request to the token service, and the token works upstream", async () => {
  const [a, b] = [await node(), await node()];
  const header = await authorize(a, "private/secret");
  expect(tokenRequests("private/secret").map((r) => r.user)).toEqual(["hubbot"]);
  expect(await authorize(b, "private/secret")).toBe(header);
  expect(tokenRequests("private/secret")).toHaveLength(1);
  const manifest = await fetch(`${upstream.registryUrl}/v2/private/secret/manifests/latest`, { headers: { authorization: header, accept: upstream.images.secret.mediaType } });
  expect(manifest.status).toBe(200);
  await manifest.body?.cancel();
});

test("Redis holds the token encrypted, under a hashed key, expiring with it", async () => {
  const a = await node();
  const header = await authorize(a, "acme/app");
  const keys = (await probe.send("KEYS", ["docxy:token:*"])) as string[];
  expect(keys.length).toBeGreaterThanOrEqual(1);
  for (const key of keys) {
    expect(key).toMatch(/^docxy:token:[0-9a-f]{64}$/);
    const value = (await probe.get(key))!;
    expect(value).not.toContain(header.slice("Bearer ".length));
    expect(value).not.toContain("hubbot");
    expect(Number(await probe.send("PTTL", [key]))).toBeGreaterThan(0);
  }
});

test("a node with another fleet secret cannot open the shared token: it fetches its own", async () => {
  const a = await node();
  await authorize(a, "acme/other");
  expect(tokenRequests("acme/other")).toHaveLength(1);
  const stranger = await node("another-secret-of-another-fleet-000000000");
  await authorize(stranger, "acme/other");
  expect(tokenRequests("acme/other")).toHaveLength(2);
});

test("a refused token is forgotten by the fleet: the next node fetches a fresh one", async () => {
  const [a, b] = [await node(), await node()];
  await authorize(a, "library/nginx");
  expect(tokenRequests("library/nginx")).toHaveLength(1);
  const dockerhub = a.upstreams.byName("dockerhub")!;
  await a.upstreamAuth.invalidate(dockerhub, "library/nginx", a.upstreamAuth.accountsOf(dockerhub)[0]);
  await authorize(b, "library/nginx");
  expect(tokenRequests("library/nginx")).toHaveLength(2);
});

test("Redis killed: a node fetches its own token without waiting on Redis", async () => {
  const a = await node();
  await redis.kill();
  const header = await authorize(a, "acme/big");
  expect(header).toStartWith("Bearer ");
  expect(tokenRequests("acme/big")).toHaveLength(1);
  expect(a.fleet!.state()).toBe("local");
});

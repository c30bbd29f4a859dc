/**
 * The start policy's probes (src/fleet/reachability.ts) against real parts: a real redis-server,
 * a closed port, and a TCP server that accepts and never answers (a hung Redis or bucket). Each
 * probe ends within its bound, names the part, and never repeats a password or secret; the policy
 * logs a warning and starts under "degrade", an error and refuses under "exit". A reachable
 * bucket (real Swift): tests/integration/fleet/s3-storage.test.ts (check-config); the binary
 * exiting or starting degraded: tests/integration/fleet/start-policy.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../src/config/schema";
import { reachParts, startPolicy } from "../../src/fleet/reachability";
import { freePort } from "../support/ports";
import { startRedis, type Redis } from "../support/redis";

const PASSWORD = "redis-password-never-logged";
const S3_SECRET = "s3-secret-never-logged";
let redis: Redis;
let hung: Server;
let hungUrl: string;
const held: Socket[] = [];

beforeAll(async () => {
  redis = await startRedis();
  hung = createServer((socket) => void held.push(socket)); // reads, never answers
  await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
  hungUrl = `127.0.0.1:${(hung.address() as { port: number }).port}`;
}, 30_000);
afterAll(async () => {
  for (const socket of held) socket.destroy();
  hung?.close();
  await redis?.stop();
});

function config(written: Record<string, unknown>): Config {
  return Value.Decode(ConfigSchema, Value.Default(ConfigSchema, written));
}
const fleet = (redis_url: string, on_unreachable = "degrade") => ({ fleet: { redis_url, advertise_url: "http://127.0.0.1:1", secret: "x".repeat(32), on_unreachable } });
const bucket = (endpoint: string) => ({ storage: "s3", s3: { endpoint, bucket: "docxy", access_key_id: "AKIA", secret_access_key: S3_SECRET } });

/** What the policy logged, level first. */
function recorder() {
  const lines: string[] = [];
  const log = {
    warn: (message: string, fields?: object) => void lines.push(`warn ${message} ${JSON.stringify(fields)}`),
    error: (message: string, fields?: object) => void lines.push(`error ${message} ${JSON.stringify(fields)}`),
  };
  return { lines, log };
}

test("a single node on its own disk has nothing to probe", async () => {
  expect(await reachParts(config({}), {})).toEqual([]);
});

test("a Redis that answers PING is reachable, named by its origin", async () => {
  const port = new URL(redis.url).port;
  expect(await reachParts(config(fleet(redis.url)), {})).toEqual([{ part: "Redis", where: `redis://127.0.0.1:${port}` }]);
});

test("a closed Redis port and a bucket that refuses connections are each named, with no password or secret", async () => {
  const [redisPort, s3Port] = [await freePort(), await freePort()];
  const parts = await reachParts(config({ ...fleet(`redis://docxy:${PASSWORD}@127.0.0.1:${redisPort}`), cache: bucket(`http://127.0.0.1:${s3Port}`) }), {});
  expect(parts.map((p) => [p.part, p.where])).toEqual([
    ["Redis", `redis://127.0.0.1:${redisPort}`],
    ["bucket", `docxy at http://127.0.0.1:${s3Port}`],
  ]);
  for (const part of parts) expect(part.error).toBeString();
  expect(parts[1]!.error).toStartWith(`listing bucket docxy at http://127.0.0.1:${s3Port} failed: `);
  expect(JSON.stringify(parts)).not.toContain(PASSWORD);
  expect(JSON.stringify(parts)).not.toContain(S3_SECRET);
});

test("a Redis and a bucket that accept and never answer are unreachable once the bound passes", async () => {
  const parts = await reachParts(config({ ...fleet(`redis://${hungUrl}`), cache: bucket(`http://${hungUrl}`) }), {}, 300);
  expect(parts).toHaveLength(2);
  expect(parts[0]!.error).toBeString();
  expect(parts[1]!.error).toContain("no answer within 0.3s");
});

test("the bucket's keys come from AWS_* when the config has none, and the secret stays out of the reason", async () => {
  const s3Port = await freePort();
  const written = { storage: "s3", s3: { endpoint: `http://127.0.0.1:${s3Port}`, bucket: "docxy" } };
  const [part] = await reachParts(config({ cache: written }), { AWS_ACCESS_KEY_ID: "AKIA", AWS_SECRET_ACCESS_KEY: S3_SECRET });
  expect(part).toMatchObject({ part: "bucket" });
  expect(part!.error).toBeString();
  expect(part!.error).not.toContain(S3_SECRET);
});

test('"degrade" warns and starts; "exit" logs an error naming Redis and refuses; a reachable Redis says nothing', async () => {
  const closed = `redis://docxy:${PASSWORD}@127.0.0.1:${await freePort()}`;
  const degrade = recorder();
  expect(await startPolicy(config(fleet(closed)), {}, degrade.log)).toBe(true);
  expect(degrade.lines).toHaveLength(1);
  expect(degrade.lines[0]).toStartWith("warn Redis cannot be reached at start: starting degraded");

  const exit = recorder();
  expect(await startPolicy(config(fleet(closed, "exit")), {}, exit.log)).toBe(false);
  expect(exit.lines).toHaveLength(1);
  expect(exit.lines[0]).toStartWith('error Redis cannot be reached at start: exiting (fleet.on_unreachable = "exit")');
  expect(exit.lines.join("\n")).not.toContain(PASSWORD);

  const up = recorder();
  expect(await startPolicy(config(fleet(redis.url, "exit")), {}, up.log)).toBe(true);
  expect(up.lines).toEqual([]);
});

/**
 * Whether the parts a fleet node shares answer, asked once at start (main.ts, before listening)
 * and by `docxy check-config`: Redis by a PING when `[fleet] redis_url` is set, the bucket by a
 * one-key listing when `[cache] storage = "s3"`. Both at once, each within PROBE_TIMEOUT_MS, so a
 * hanging part delays a start by seconds, not forever. `[fleet] on_unreachable` says what a node
 * does when one does not answer: "degrade" starts anyway (coordinating alone, pulling from the
 * upstream until the bucket answers, both picked up again without a restart), "exit" stops it
 * before it listens, for operators who would rather have a crash loop than a node that quietly
 * serves less. Messages name a part by its origin only: a Redis URL may hold a password, and
 * an S3 secret is never in an error.
 */
import { RedisClient } from "bun";
import { S3Storage } from "../cache/s3-storage";
import type { Config } from "../config/schema";
import type { Logger } from "../observability/logger";
import { within } from "../cache/s3-upload";

/** A PING or a one-key listing answers in milliseconds; a few seconds is plenty for a part that is up. */
export const PROBE_TIMEOUT_MS = 3_000;

export interface PartReach {
  part: "Redis" | "bucket";
  /** e.g. "redis://10.0.0.2:6379" or "docxy at http://s3.internal:9000" (a bucket): never userinfo. */
  where: string;
  /** Why it did not answer; absent when it did. */
  error?: string;
}

/** The shared parts `config` uses, each probed; empty for a single node on its own disk. */
export async function reachParts(config: Config, env: Record<string, string | undefined>, timeoutMs = PROBE_TIMEOUT_MS): Promise<PartReach[]> {
  const probes: Promise<PartReach>[] = [];
  if (config.fleet.redis_url) probes.push(reachRedis(config.fleet.redis_url, timeoutMs));
  if (config.cache.enabled && config.cache.storage === "s3") probes.push(reachBucket(config.cache.s3, env, timeoutMs));
  return Promise.all(probes);
}

/**
 * At start: says plainly which part does not answer and why, as a warning under "degrade" and
 * as an error under "exit". False when the node must not start.
 */
export async function startPolicy(config: Config, env: Record<string, string | undefined>, log: Pick<Logger, "warn" | "error">): Promise<boolean> {
  const unreachable = (await reachParts(config, env)).filter((p) => p.error !== undefined);
  const exit = config.fleet.on_unreachable === "exit";
  for (const { part, where, error } of unreachable) {
    const fields = { where, error: error!, on_unreachable: config.fleet.on_unreachable };
    if (exit) log.error(`${part} cannot be reached at start: exiting (fleet.on_unreachable = "exit")`, fields);
    else log.warn(`${part} cannot be reached at start: starting degraded, it is used again once it answers`, fields);
  }
  return !(exit && unreachable.length > 0);
}

async function reachRedis(url: string, timeoutMs: number): Promise<PartReach> {
  const parsed = new URL(url);
  const where = `${parsed.protocol}//${parsed.host}`;
  const client = new RedisClient(url, { connectionTimeout: timeoutMs, autoReconnect: false, maxRetries: 0 });
  try {
    const answer = await within(client.send("PING", []), timeoutMs, "no answer");
    return answer === "PONG" ? { part: "Redis", where } : { part: "Redis", where, error: `PING answered ${String(answer)}` };
  } catch (error) {
    const { message, code } = error as Error & { code?: unknown };
    return { part: "Redis", where, error: scrub(`${message}${typeof code === "string" ? ` (${code})` : ""}`, parsed.password && url, parsed.password) };
  } finally {
    client.close();
  }
}

async function reachBucket(s3: Config["cache"]["s3"], env: Record<string, string | undefined>, timeoutMs: number): Promise<PartReach> {
  const where = `${s3.bucket} at ${new URL(s3.endpoint).origin}`;
  const secretAccessKey = s3.secret_access_key || env.AWS_SECRET_ACCESS_KEY || "";
  try {
    await S3Storage.probe({
      endpoint: s3.endpoint,
      bucket: s3.bucket,
      region: s3.region,
      prefix: s3.prefix,
      accessKeyId: s3.access_key_id || env.AWS_ACCESS_KEY_ID || "",
      secretAccessKey,
      timeoutMs: { request: timeoutMs, stall: timeoutMs },
    });
    return { part: "bucket", where };
  } catch (error) {
    return { part: "bucket", where, error: scrub((error as Error).message, new URL(s3.endpoint).password && s3.endpoint, secretAccessKey) };
  }
}

/** Belt and braces: a client library's message could echo a URL with a password, or a secret. */
function scrub(message: string, ...secrets: string[]): string {
  return secrets.filter(Boolean).reduce((scrubbed, secret) => scrubbed.replaceAll(secret, "<secret>"), message);
}

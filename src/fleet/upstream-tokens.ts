/**
 * docxy's own upstream tokens shared by the fleet through Redis
 * (`docxy:token:<sha256 of upstream, scope and account>`), each expiring
 * with the token. A token must be usable by the other nodes, so it cannot be
 * kept as a hash; it is kept encrypted instead (AES-256-GCM under a key
 * derived from the fleet secret, bound to its Redis key), so Redis, its
 * dumps and whoever reads them hold no bearer token. Names of accounts and
 * repositories are hashed into the key for the same reason.
 *
 * Redis unavailable: nothing found, nothing stored (FleetRedis answers within
 * its timeout); each node then fetches its own tokens as a single node does.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import type { CachedToken, SharedTokens } from "../upstream/upstream-auth";
import type { FleetRedis } from "./redis";

const KEY_PREFIX = "docxy:token:";

export class FleetUpstreamTokens implements SharedTokens {
  private readonly key: Buffer;

  constructor(
    private readonly redis: FleetRedis,
    secret: string,
  ) {
    // A key of its own: a leaked token key says nothing about the signing of node-to-node requests.
    this.key = Buffer.from(hkdfSync("sha256", secret, "", "docxy upstream tokens", 32));
  }

  async get(key: string): Promise<CachedToken | undefined> {
    const redisKey = this.redisKey(key);
    const answer = await this.redis.send("GET", [redisKey]);
    if (typeof answer?.value !== "string") return undefined;
    return this.open(redisKey, answer.value);
  }

  async set(key: string, token: CachedToken): Promise<void> {
    const ttl = token.expiresAt - Date.now();
    if (ttl <= 0) return;
    const redisKey = this.redisKey(key);
    await this.redis.send("SET", [redisKey, this.seal(redisKey, token), "PX", String(ttl)]);
  }

  async delete(key: string): Promise<void> {
    await this.redis.send("DEL", [this.redisKey(key)]);
  }

  private redisKey(key: string): string {
    return KEY_PREFIX + createHash("sha256").update(key).digest("hex");
  }

  /** "<iv>.<ciphertext>.<tag>" in base64url; the Redis key is authenticated with it. */
  private seal(redisKey: string, token: CachedToken): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv).setAAD(Buffer.from(redisKey));
    const sealed = Buffer.concat([cipher.update(JSON.stringify(token)), cipher.final()]);
    return [iv, sealed, cipher.getAuthTag()].map((part) => part.toString("base64url")).join(".");
  }

  /** Undefined for a value that does not open: another fleet secret, or not written by docxy. */
  private open(redisKey: string, value: string): CachedToken | undefined {
    const [iv, sealed, tag] = value.split(".").map((part) => Buffer.from(part, "base64url"));
    if (!iv || !sealed || !tag || iv.length !== 12 || tag.length !== 16) return undefined;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, iv).setAAD(Buffer.from(redisKey)).setAuthTag(tag);
      const token = JSON.parse(Buffer.concat([decipher.update(sealed), decipher.final()]).toString("utf8")) as CachedToken;
      return typeof token.header === "string" && typeof token.expiresAt === "number" ? token : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * What the nodes learn from the upstream, shared through Redis (issue 16;
 * the port and its uses: cache/shared-knowledge.ts), each key expiring when
 * the knowledge would go stale on a node anyway:
 * - `docxy:tag:<upstream>/<repository>:<tag>#<accept class>`: a tag's
 *   answer, until its TTL from when it was fetched; `docxy:tag-claim:…` the
 *   node revalidating it (SET NX PX, CLAIM_MS, released by compare-and-delete).
 * - `docxy:access:<upstream>/<repository>`: public or not, for the access
 *   gate's PUBLIC_TTL from when it was checked.
 * - `docxy:link:<upstream>/<repository>@<digest>`: that digest is in that
 *   repository upstream, for LINK_TTL_MS (renewed by every fetch): a digest
 *   stays in a repository while any manifest there references it, whatever
 *   its tags do, and nodes keep links in their index for good; the TTL only
 *   lets Redis forget repositories nobody pulls any more.
 * - `docxy:proof:<HMAC of the gate's proof key>`: when credentials proved
 *   access to a repository, for PROOF_TTL. The gate's key holds a sha256 of
 *   the client's Authorization, never the value; it is keyed again under the
 *   fleet secret so that whoever reads Redis cannot test guessed passwords
 *   (a Basic header is a user and a password) against it.
 *
 * Redis unavailable: nothing is found, nothing is stored, and every claim is
 * this node's (FleetRedis answers within its timeout); each node then asks the
 * upstream as a single node does. Values are checked when read: a key not
 * written by docxy counts as absent.
 */
import { createHmac, hkdfSync, randomUUID } from "node:crypto";
import type { RepositoryAccess } from "../cache/cache-index";
import type { SharedKnowledge, TagAnswer, TagClaim, TagKey } from "../cache/shared-knowledge";
import type { FleetRedis } from "./redis";

const PREFIX = "docxy:";
const LINK_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Longer than a HEAD upstream takes; a claimant that died holds the others up only for their wait (tag-freshness.ts). */
const CLAIM_MS = 5_000;

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

const OWN_CLAIM: TagClaim = { release: () => undefined };

export interface FleetSharedKnowledgeOptions {
  /** Overrides for tests. */
  linkTtlMs?: number;
  claimMs?: number;
}

export class FleetSharedKnowledge implements SharedKnowledge {
  private readonly proofKey: Buffer;
  private readonly linkTtlMs: number;
  private readonly claimMs: number;

  constructor(
    private readonly redis: FleetRedis,
    secret: string,
    options: FleetSharedKnowledgeOptions = {},
  ) {
    this.proofKey = Buffer.from(hkdfSync("sha256", secret, "", "docxy access proofs", 32));
    this.linkTtlMs = options.linkTtlMs ?? LINK_TTL_MS;
    this.claimMs = options.claimMs ?? CLAIM_MS;
  }

  async tag(key: TagKey): Promise<TagAnswer | undefined> {
    const value = await this.getJson(tagKey(key));
    const answer = value as Partial<TagAnswer> | undefined;
    if (typeof answer?.digest !== "string" || typeof answer.mediaType !== "string" || !Number.isSafeInteger(answer.size) || typeof answer.fetchedAt !== "number") {
      return undefined;
    }
    return { digest: answer.digest, mediaType: answer.mediaType, size: answer.size!, fetchedAt: answer.fetchedAt };
  }

  publishTag(key: TagKey, answer: TagAnswer, ttlMs: number): void {
    const { digest, mediaType, size, fetchedAt } = answer;
    this.set(tagKey(key), JSON.stringify({ digest, mediaType, size, fetchedAt }), fetchedAt + ttlMs - Date.now());
  }

  async claimTag(key: TagKey): Promise<TagClaim | undefined> {
    const redisKey = `${PREFIX}tag-claim:${tagName(key)}`;
    const token = randomUUID();
    const answer = await this.redis.send("SET", [redisKey, token, "NX", "PX", String(this.claimMs)]);
    if (!answer) return OWN_CLAIM; // no fleet to ask: revalidate as a single node does
    if (answer.value !== "OK") return undefined;
    return { release: () => void this.redis.send("EVAL", [RELEASE, "1", redisKey, token]) };
  }

  async access(upstream: string, repository: string): Promise<RepositoryAccess | undefined> {
    const access = (await this.getJson(`${PREFIX}access:${upstream}/${repository}`)) as Partial<RepositoryAccess> | undefined;
    if (typeof access?.public !== "boolean" || typeof access.checkedAt !== "number") return undefined;
    return { public: access.public, checkedAt: access.checkedAt };
  }

  publishAccess(upstream: string, repository: string, access: RepositoryAccess, ttlMs: number): void {
    const value = JSON.stringify({ public: access.public, checkedAt: access.checkedAt });
    this.set(`${PREFIX}access:${upstream}/${repository}`, value, access.checkedAt + ttlMs - Date.now());
  }

  async hasLink(upstream: string, repository: string, digest: string): Promise<boolean> {
    const answer = await this.redis.send("EXISTS", [linkKey(upstream, repository, digest)]);
    return Number(answer?.value) === 1;
  }

  publishLink(upstream: string, repository: string, digest: string): void {
    this.set(linkKey(upstream, repository, digest), "1", this.linkTtlMs);
  }

  async proof(proofKey: string): Promise<number | undefined> {
    const answer = await this.redis.send("GET", [this.proofRedisKey(proofKey)]);
    const at = Number(answer?.value);
    return typeof answer?.value === "string" && Number.isSafeInteger(at) ? at : undefined;
  }

  publishProof(proofKey: string, at: number, ttlMs: number): void {
    this.set(this.proofRedisKey(proofKey), String(at), at + ttlMs - Date.now());
  }

  private proofRedisKey(proofKey: string): string {
    return `${PREFIX}proof:${createHmac("sha256", this.proofKey).update(proofKey).digest("hex")}`;
  }

  /** Fire-and-forget: FleetRedis bounds it by its timeout and never throws. Nothing already expired is written. */
  private set(key: string, value: string, ttlMs: number): void {
    const ms = Math.floor(ttlMs);
    if (ms > 0) void this.redis.send("SET", [key, value, "PX", String(ms)]);
  }

  private async getJson(key: string): Promise<unknown> {
    const answer = await this.redis.send("GET", [key]);
    if (typeof answer?.value !== "string") return undefined;
    try {
      return JSON.parse(answer.value) as unknown;
    } catch {
      return undefined;
    }
  }
}

function tagName({ upstream, repository, tag, acceptKey }: TagKey): string {
  return `${upstream}/${repository}:${tag}#${acceptKey}`;
}

function tagKey(key: TagKey): string {
  return `${PREFIX}tag:${tagName(key)}`;
}

function linkKey(upstream: string, repository: string, digest: string): string {
  return `${PREFIX}link:${upstream}/${repository}@${digest}`;
}

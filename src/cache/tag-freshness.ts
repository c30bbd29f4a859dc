/**
 * "One node revalidates" (issue 16): a tag whose answer is missing here or
 * older than its TTL is revalidated with one HEAD upstream, not one per
 * request nor one per node. Clients pull the same tag at once (a CI farm
 * starting its jobs, a rollout on every machine), and a fleet is meant to
 * cost the upstream what one node does.
 *
 * Before its own HEAD a request takes a turn:
 * - another request of this node revalidating the same key: wait for it (at
 *   most WAIT_MS), then read the index again;
 * - the fleet's answer (SharedKnowledge) fetched within the TTL: adopted
 *   into the index with its fetchedAt, so it ages here as it does there;
 * - otherwise a claim in the fleet; the node that loses it re-reads the
 *   fleet's answer every POLL_MS for at most WAIT_MS, then revalidates
 *   itself (a winner that died or failed costs its peers that much, once).
 * A fresh answer from the upstream is recorded here and published.
 * With NOTHING_SHARED (a single node) only the first step waits.
 */
import type { CacheIndex, TagTarget } from "./cache-index";
import type { SharedKnowledge, TagClaim, TagKey } from "./shared-knowledge";

const WAIT_MS = 2_000;
const POLL_MS = 50;

const NOTHING_TO_END = () => undefined;

export class TagFreshness {
  private readonly running = new Map<string, Promise<void>>();

  constructor(
    private readonly index: CacheIndex,
    private readonly shared: SharedKnowledge,
    private readonly waitMs = WAIT_MS,
  ) {}

  /**
   * Call before revalidating `key`, then read the index again: it holds a
   * fresh answer when someone else found one. Call the function returned
   * once the revalidation is over (whatever its outcome).
   */
  async turn(key: TagKey, ttlMs: number): Promise<() => void> {
    // tag_ttl 0: every request revalidates, no answer is ever fresh enough to wait for.
    if (ttlMs <= 0) return NOTHING_TO_END;
    const id = JSON.stringify([key.upstream, key.repository, key.tag, key.acceptKey]);
    const running = this.running.get(id);
    if (running) {
      await within(running, this.waitMs);
      return NOTHING_TO_END;
    }
    let settle!: () => void;
    const flight = new Promise<void>((resolve) => (settle = resolve));
    this.running.set(id, flight);
    let claim: TagClaim | undefined;
    const end = () => {
      if (this.running.get(id) === flight) this.running.delete(id);
      settle();
      claim?.release();
    };
    try {
      if (!(await this.adopt(key, ttlMs))) {
        claim = await this.shared.claimTag(key);
        if (!claim) await this.awaitFleet(key, ttlMs);
      }
    } catch (error) {
      end();
      throw error;
    }
    return end;
  }

  /** What the upstream just answered for `key`: kept here, and told to the fleet. */
  record(key: TagKey, target: TagTarget, ttlMs: number): void {
    const fetchedAt = Date.now();
    this.index.putTag(key.upstream, key.repository, key.tag, key.acceptKey, target, fetchedAt);
    if (ttlMs > 0) this.shared.publishTag(key, { ...target, fetchedAt }, ttlMs);
  }

  /** The fleet's answer, when fresh and newer than ours, into the index. */
  private async adopt(key: TagKey, ttlMs: number): Promise<boolean> {
    const answer = await this.shared.tag(key);
    if (!answer || Date.now() - answer.fetchedAt >= ttlMs) return false;
    const known = this.index.getTag(key.upstream, key.repository, key.tag, key.acceptKey);
    if (!known || known.fetchedAt < answer.fetchedAt) {
      const { digest, mediaType, size } = answer;
      this.index.putTag(key.upstream, key.repository, key.tag, key.acceptKey, { digest, mediaType, size }, answer.fetchedAt);
    }
    return true;
  }

  /** Another node revalidates: its answer, if it comes within waitMs. */
  private async awaitFleet(key: TagKey, ttlMs: number): Promise<void> {
    const deadline = Date.now() + this.waitMs;
    while (Date.now() < deadline) {
      await Bun.sleep(POLL_MS);
      if (await this.adopt(key, ttlMs)) return;
    }
  }
}

/** Waits for `promise`, at most `ms`. */
async function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: Timer | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

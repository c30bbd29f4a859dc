/**
 * Who is filling which blob, and which jobs run once at a time: what lets N
 * clients asking for one cold blob cost the upstream one download.
 *
 * LocalCoordination (local-coordination.ts) implements it inside the
 * process: a claim is an entry in a map, a join awaits the fill the claimer
 * hands over. In a fleet (issue 16) RedisCoordination
 * (redis-coordination.ts) wraps one: a claim is also a lease in Redis
 * (fleet/lease.ts), and a claim another node holds resolves to that node's
 * fill, streamed from it (fleet/peer-fill.ts) — no polling, and a lease
 * whose node died expires and can be claimed again.
 *
 * Where a blob miss goes: cache front → blob cache → here (join the fill in
 * progress, or claim it) → the remote (remote.ts), once.
 *
 * Types only: tests/cache/local-coordination.test.ts holds LocalCoordination
 * to it, tests/cache/redis-coordination.test.ts RedisCoordination, and
 * tests/cache/blob-cache.test.ts coalesces clients through it.
 */
import type { Handoff } from "../util/file-response";

/** A fill clients can follow while it runs: one here (fill.ts), or, in a fleet, one on another node. */
export interface FillInProgress {
  /** The blob's size, from the upstream's Content-Length. */
  readonly size: number | undefined;
  /** False once a new reader could miss bytes (the fill lost its disk, or stopped): it passes through. */
  readonly joinable: boolean;
  /** Bytes `start`..`end` (inclusive) as the fill delivers them; a local fill may end early into `handoff` (fill.ts). */
  read(start: number, end: number, handoff?: Handoff): ReadableStream<Uint8Array>;
}

/** The right to fill one digest, held from before the upstream request until the fill settles. */
export interface FillClaim {
  /** The fill is under way (those waiting join it), or could not start (undefined: they pass through, and the claim ends). */
  started(fill: FillInProgress | undefined): void;
  /**
   * The fill settled: the digest is not being filled any more. `committed`:
   * the blob is now stored here (a fleet keeps pointing other nodes at this
   * one for a while). Later calls do nothing.
   */
  release(committed?: boolean): void;
}

/**
 * What claiming found: the right to fill, or the fill someone else holds the
 * right to (here or on another node), once started — undefined when it could
 * not start or cannot be followed (then the client passes through).
 */
export type ClaimResult = { claim: FillClaim } | { joined: FillInProgress | undefined };

export interface Coordination {
  /**
   * The fill of `digest` in progress on this node, or undefined when there is
   * none. It resolves once the fill has started, to undefined if it could not.
   */
  join(digest: string): Promise<FillInProgress | undefined> | undefined;
  /** The right to fill `digest`, or the fill of whoever holds it already. */
  claim(digest: string): Promise<ClaimResult>;
  /** Whether `digest` is being filled on this node (its content must not be evicted). */
  isFilling(digest: string): boolean;
  /** Fills in progress (the claims held here). */
  readonly fillsInProgress: number;
  /**
   * Runs `task` as the only holder of `name` (the eviction runs once at a
   * time); undefined, without running it, when someone else holds it.
   */
  exclusive<T>(name: string, task: () => Promise<T>): Promise<T | undefined>;
}

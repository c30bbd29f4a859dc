/**
 * A fill another node owns, fanned out on this one: ONE stream from the
 * owner (peer-fill.ts) per digest feeds a local Fill (cache/fill.ts), and
 * this node's clients follow that Fill, coalesced exactly as behind an
 * upstream download. Without it every client read was its own stream out of
 * the owner (bench 7/7b: 32 cold pulls over 3 nodes took 2-4x one node).
 *
 * The Fill checks size and sha256 again (the owner did already: defense in
 * depth) and holds back each reader's last byte until then, and the owner's
 * stream errors on any short or wrong answer, so a client of this node never
 * gets a short body that looks complete.
 *
 * Where the bytes land:
 * - a store of this node's own (a directory): the blob is committed there and
 *   indexed, so the next pull here is a hit;
 * - a shared store (the fleet's bucket): the owner commits it there already,
 *   and a second upload per follower would be waste. The bytes go to a local
 *   directory (`follow`) instead, and the file is removed once the fill's
 *   readers are done: later pulls find the blob in the bucket.
 *
 * Tests: tests/cache/redis-coordination.test.ts (one owner stream for many
 * clients, the owner dying mid-stream).
 */
import type { BlobStorage } from "../cache/blob-storage";
import type { FillClaim, FillInProgress } from "../cache/coordination";
import { Fill } from "../cache/fill";
import type { Hashing } from "../cache/hashing";
import type { PeerFill } from "./peer-fill";

export interface FollowTarget {
  /** Where the followed bytes go. */
  storage: BlobStorage;
  /** True: `storage` is this node's own and the blob stays there (`committed` is told). False: it is removed when read. */
  keep: boolean;
  /** Keep following when the last client has gone (only worth it when the blob is kept). */
  continueWithoutReaders: boolean;
  /** A kept blob is committed (index it, run eviction). */
  committed?(digest: string, size: number): void;
  log?: { warn(message: string, fields: Record<string, string>): void };
  /** Where the fan-out hashes what it receives (it verifies the owner's bytes like any fill). */
  hashing?: Hashing;
}

/** Makes follower fills for a coordination: one per digest, started behind the local claim. */
export type FollowPeer = (digest: string, peer: PeerFill, claim: FillClaim) => Promise<FillInProgress | undefined>;

export function followPeers(target: FollowTarget): FollowPeer {
  return (digest, peer, claim) => follow(target, digest, peer, claim);
}

/**
 * Starts the local Fill of `digest` from `peer`, hands it to `claim` (this
 * node's clients join it) and releases the claim once nobody can use the
 * Fill any more. Undefined, without touching the claim, when no temp blob
 * can be had (a full disk) or the blob is empty: the caller follows the owner
 * per read, as before.
 */
async function follow(target: FollowTarget, digest: string, peer: PeerFill, claim: FillClaim): Promise<FillInProgress | undefined> {
  const { storage, keep } = target;
  if (peer.size === 0) return undefined;
  const temp = await storage.begin(digest).catch(() => undefined);
  if (!temp) return undefined;
  // After its readers are done a committed fill reads from `storage`: until then the local claim
  // stays (isFilling spares it from eviction, and late clients join it); then it ends.
  let over = false;
  const end = () => {
    if (over) return;
    over = true;
    claim.release();
    if (!keep) void storage.delete(digest).catch(() => undefined);
  };
  const fill: Fill = new Fill({
    digest,
    size: peer.size,
    body: peer.read(0, peer.size - 1),
    temp,
    storage,
    continueWithoutReaders: keep && target.continueWithoutReaders,
    hashing: target.hashing,
    onIdle: end,
    onSettled: ({ committed, size, error }) => {
      if (committed && keep) target.committed?.(digest, size);
      if (error) target.log?.warn("following another node's fill failed", { digest, error: error.message });
      // Uncommitted: nobody joins it any more (readers of a served one finish from its temp file).
      if (!committed || fill.readerCount === 0) end();
    },
  });
  // A client that joined just as the fan-out ended (a removed file) or stopped being joinable (its
  // disk failed) reads from the owner per read, as before: passed through, it would cost an
  // upstream download the lease exists to spare.
  const followed: FillInProgress = {
    size: peer.size,
    joinable: true,
    read: (start, stop) => ((keep || !over) && fill.joinable ? fill.read(start, stop) : peer.read(start, stop)),
  };
  claim.started(followed);
  void fill.start();
  return followed;
}

/**
 * The coordination (coordination.ts) of a fleet node: the in-process one
 * (local-coordination.ts) for the clients of this node, plus a lease in the
 * fleet's Redis (fleet/lease.ts) for each fill, so one node of the fleet
 * downloads a blob and the others stream it from that node
 * (fleet/peer-fill.ts, served by http/routes/fleet.ts).
 *
 * A claim first takes the local entry (this node's clients coalesce behind
 * it as on a single node), then the lease:
 * - won: this node fills; the lease lives until the fill settles;
 * - held by another node: its fill is followed from there;
 * - the owner does not answer (it died): its lease is dropped and claimed;
 * - the owner has no fill to show (it failed, or its blob left its store):
 *   the lease is tried once more, and if it is still held the client passes
 *   through — never a 202/503 to wait on;
 * - Redis unavailable (fleet/redis.ts: every call times out on its own): this
 *   node fills on its own, as a single node would, and tries Redis again later.
 *
 * With `follow` (fleet/followed-fill.ts) a fill followed from another node
 * is ONE stream from it, fanned out here to every client of this node that
 * joins the local entry, which lasts until that fan-out is over; without it
 * (or when it cannot start) each client read is its own stream from the owner.
 *
 * Only the fills this node downloads itself are served to other nodes
 * (`ownFill`): a node never relays a fill it follows, so two nodes can never
 * wait on each other.
 *
 * `exclusive` stays local: what it guards is the eviction of this node's own
 * store (a fleet node on its disk keeps its own copies, and must keep
 * evicting them while Redis is away). A fleet's shared bucket is evicted by
 * fleet/fleet-eviction.ts, which takes a lock in Redis so one node at a time
 * does it, and does nothing while Redis is away.
 */
import type { FollowPeer } from "../fleet/followed-fill";
import type { FillLeases, Lease } from "../fleet/lease";
import { PeerFill } from "../fleet/peer-fill";
import type { FleetSigner } from "../fleet/signing";
import type { ClaimResult, Coordination, FillClaim, FillInProgress } from "./coordination";
import { LocalCoordination } from "./local-coordination";

const NO_LEASE: Lease = { release: async () => undefined };

export class RedisCoordination implements Coordination {
  private readonly local = new LocalCoordination();
  /** The fills whose lease this node holds, resolving once their upstream request has answered. */
  private readonly own = new Map<string, Promise<FillInProgress | undefined>>();

  constructor(
    private readonly leases: FillLeases,
    private readonly signer: FleetSigner,
    private readonly follow?: FollowPeer,
  ) {}

  get fillsInProgress(): number {
    return this.local.fillsInProgress;
  }

  join(digest: string): Promise<FillInProgress | undefined> | undefined {
    return this.local.join(digest);
  }

  isFilling(digest: string): boolean {
    return this.local.isFilling(digest);
  }

  /**
   * The fill of `digest` this node downloads, for other nodes to follow. A
   * node asking between the lease and the upstream's answer waits for the
   * fill to start instead of being told there is none (it would pass through).
   */
  ownFill(digest: string): Promise<FillInProgress | undefined> | undefined {
    return this.own.get(digest);
  }

  async claim(digest: string): Promise<ClaimResult> {
    const claimed = await this.local.claim(digest);
    if (!("claim" in claimed)) return claimed;
    const local = claimed.claim;
    for (let attempt = 1; ; attempt++) {
      const lease = await this.leases.take(digest);
      // Redis unavailable: fill here, as a single node. Still served to other nodes: the lease
      // may have been written before the answer timed out, and then it names this one.
      if (!lease) return { claim: this.owning(digest, local, NO_LEASE) };
      if ("won" in lease) return { claim: this.owning(digest, local, lease.won) };
      const peer = await PeerFill.open(lease.owner, digest, this.signer);
      const followed = peer instanceof PeerFill ? await this.follow?.(digest, peer, local) : undefined;
      if (followed) return { joined: followed }; // the local entry now ends with the fan-out
      if (peer instanceof PeerFill || attempt === 2) {
        const joined = peer instanceof PeerFill ? peer : undefined;
        // Clients of this node that joined the local entry meanwhile follow the same answer; the
        // entry ends now, since this node is not filling (the next request asks the lease again).
        local.started(joined);
        local.release();
        return { joined };
      }
      // Its node is gone: its lease goes with it, and the next attempt claims the fill.
      if (peer === "unreachable") await lease.drop();
    }
  }

  exclusive<T>(name: string, task: () => Promise<T>): Promise<T | undefined> {
    return this.local.exclusive(name, task);
  }

  private owning(digest: string, local: FillClaim, lease: Lease): FillClaim {
    const mine = this.local.join(digest)!; // the local entry just claimed: resolves when the fill starts
    this.own.set(digest, mine);
    const release = (committed?: boolean) => {
      local.release();
      void lease.release(committed);
      if (this.own.get(digest) === mine) this.own.delete(digest);
    };
    return {
      started: (fill) => {
        local.started(fill);
        if (!fill) release();
      },
      release,
    };
  }
}

/**
 * Blobs through the cache: a hit is served from the store, a blob being
 * filled is joined, a miss starts one fill that the first client and every
 * later one follow (cache/fill.ts). Responses say which in `X-Cache`.
 *
 * On a store other nodes write too (a fleet's bucket, BlobStorage.shared),
 * a blob this node's index does not know is looked up there (one HEAD)
 * before anything goes upstream, and adopted into the index after the same
 * access check as any hit. A store that fails costs the client a download
 * from the upstream, never its pull.
 *
 * Where a blob miss goes, one hop each: cache front (cache-front.ts) → here
 * → coordination (coordination.ts: join the fill in progress, or claim it)
 * → the remote (remote.ts: one GET of the whole blob) → a Fill into the
 * blob storage (blob-storage.ts), recorded in the index (cache-index.ts).
 * In a fleet the claim may find the fill running on another node: the
 * client follows it from there (COALESCED), once the access gate agreed.
 *
 * What this cache cannot answer it hands back as "pass-through" and the
 * front passes it through: a HEAD on a miss (it fills nothing), a fill that
 * cannot be joined, a store that cannot take the blob. Range requests on a
 * miss start a whole-blob fill and are served from it as the bytes arrive
 * (Docker resumes a layer with `Range: bytes=N-` and needs a 206); an answer
 * that turns out uncacheable is relayed from that same request
 * (uncacheable.ts). With a sendfile port, a GET of a committed blob is
 * redirected there (sendfile-redirects.ts), and with presigned redirects a
 * GET of one that would stream from a bucket goes to the bucket itself
 * (presigned-redirects.ts). Starting a fill takes a slot of the fill
 * limits (fill-limits.ts); joining one is free.
 */
import { API_VERSION, API_VERSION_HEADER, DOCKER_CONTENT_DIGEST } from "../oci/headers";
import { blobHead, withNamespace } from "../oci/responses";
import type { Logger } from "../observability/logger";
import type { PullRequest } from "../proxy/pull-request";
import { discard } from "../upstream/client";
import { fileResponse, handingOff } from "../util/file-response";
import { onStreamEnd } from "../util/stream-end";
import type { AccessGate } from "./access-gate";
import { BlobReaders, type FleetReaders } from "./blob-readers";
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";
import type { CacheIndex } from "./cache-index";
import type { Answer } from "./cache-front";
import type { Coordination, FillClaim, FillInProgress } from "./coordination";
import type { Eviction } from "./eviction";
import { Fill } from "./fill";
import type { Hashing } from "./hashing";
import type { FillLimits, FillSlot, RefusalReason } from "./fill-limits";
import type { PresignedRedirects } from "./presigned-redirects";
import type { Remote } from "./remote";
import type { SendfileRedirects } from "./sendfile-redirects";
import { relayUncacheable } from "./uncacheable";
import { verifiedBlob } from "./verified-relay";

export interface BlobCacheParts {
  storage: BlobStorage;
  index: CacheIndex;
  remote: Remote;
  coordination: Coordination;
  gate: AccessGate;
  evictor: Eviction;
  limits: FillLimits;
  log: Logger;
  /** Keep filling when every client has gone (`continue_on_disconnect`). */
  continueWithoutReaders: boolean;
  /** Where fills hash what they download (hashing.ts); this thread when absent. */
  hashing?: Hashing;
  sendfile?: SendfileRedirects;
  /** Set when a hit not on this node's disk goes to the bucket itself (presigned-redirects.ts). */
  presigned?: PresignedRedirects;
  /** On a fleet's shared bucket: readers registered fleet-wide too (blob-readers.ts). */
  readers?: FleetReaders;
}

export class BlobCache {
  private readonly readers: BlobReaders;

  constructor(private readonly parts: BlobCacheParts) {
    this.readers = new BlobReaders(parts.coordination, parts.evictor, parts.readers);
  }

  /** Blob downloads being filled now. */
  get fillsInProgress(): number {
    return this.parts.coordination.fillsInProgress;
  }

  /** Fills refused so far by the fill limits, by reason. */
  get fillsRefused(): Readonly<Record<RefusalReason, number>> {
    return this.parts.limits.refused;
  }

  /** Content being read, filled or followed must not be evicted. */
  inUse(digest: string): boolean {
    return this.readers.inUse(digest);
  }

  /** The blob `request` names (a sha256 digest: the only kind verified), or "pass-through". */
  async serve(request: PullRequest): Promise<Answer> {
    const { index, coordination, gate, storage } = this.parts;
    const digest = request.path.reference!;
    if (index.getBlob(digest) || coordination.isFilling(digest)) {
      const refusal = await gate.check(request, digest);
      if (refusal) return refusal;
    }
    // Looked up after the access check, which may have taken a round trip during which a fill ended.
    const { release, allowed } = this.readers.acquire(digest); // before opening: eviction must not pull it away meanwhile
    let handedOver = false;
    try {
      const known = index.getBlob(digest) !== undefined;
      // A shared store may hold what this node never saw (another node filled it): one HEAD there
      // instead of a download from the upstream. Not while this node fills it: that is joined below.
      const ask = known || (storage.shared === true && !coordination.isFilling(digest));
      // The fleet-wide registration answers in parallel with the HEAD: one wait, not two.
      const [opened, mayRead] = await Promise.all([ask ? this.open(digest) : undefined, allowed]);
      const stored = mayRead ? opened : undefined;
      if (stored && !known) {
        // Adopted: it goes through the same gate as any hit before a byte is served.
        const refusal = await gate.check(request, digest);
        if (refusal) return refusal;
        index.putBlob(digest, stored.size);
      }
      if (stored) {
        index.touch(digest);
        // A local file may go to the sendfile port, a bucket's object to the bucket itself; either
        // way nothing streams through here, and the reader is released below.
        const location =
          request.method !== "GET"
            ? undefined
            : stored.path
              ? this.parts.sendfile?.location(request.origin, digest)
              : this.parts.presigned?.location(digest);
        if (location) return this.redirect(request, location);
        return this.respond(request, stored.size, "HIT", (start, end, init) => {
          handedOver = true;
          if (stored.path) return fileResponse({ path: stored.path, start, end, done: release }, init);
          return new Response(onStreamEnd(stored.stream(start, end), release), init);
        });
      }
    } finally {
      if (!handedOver) release();
    }

    const pending = coordination.join(digest);
    if (pending) return this.follow(request, await pending);
    if (request.method === "HEAD") return "pass-through";
    return this.startFill(request);
  }

  /**
   * A client joining a fill in progress. One that cannot be joined (it failed, or its disk did) is
   * relayed from the upstream, still verified: the fill may have failed on wrong bytes, and the
   * same source may send them again.
   */
  private async follow(request: PullRequest, fill: FillInProgress | undefined): Promise<Answer> {
    if (!fill?.joinable || fill.size === undefined) {
      if (request.method === "HEAD") return "pass-through";
      return verifiedBlob(await this.parts.remote.forward(request), request.path.reference!, this.parts.hashing);
    }
    return this.respond(request, fill.size, "COALESCED", (start, end, init) => handingOff((handoff) => fill.read(start, end, handoff), init));
  }

  private async startFill(request: PullRequest): Promise<Answer> {
    const { limits, coordination, remote } = this.parts;
    const digest = request.path.reference!;
    const slot = limits.reserve(request.client); // throws the 429/503 before anything starts
    let claimed;
    try {
      claimed = await coordination.claim(digest);
    } catch (error) {
      slot.release();
      throw error;
    }
    if (!("claim" in claimed)) {
      slot.release();
      // Someone started this fill since serve() looked, maybe on another node for another
      // repository: the client has proved nothing yet, so the gate decides first.
      const refusal = claimed.joined && (await this.parts.gate.check(request, digest));
      return refusal || this.follow(request, claimed.joined);
    }
    const { claim } = claimed;
    const forget = () => {
      slot.release();
      claim.started(undefined);
    };
    let result;
    try {
      // Not the client's signal: the download belongs to every client that joins it.
      result = await remote.fetch({ ...request, signal: undefined }, { method: "GET", withoutRange: true });
    } catch (error) {
      forget();
      throw error;
    }
    const length = Number(result.response.headers.get("content-length") ?? NaN);
    const fillable = result.response.status === 200 && result.response.body && Number.isSafeInteger(length);
    if (fillable) {
      try {
        slot.size(length);
      } catch (error) {
        await discard(result.response);
        forget();
        throw error;
      }
    }
    const temp = fillable ? await this.begin(digest) : undefined;
    if (!temp) {
      forget();
      // Not cacheable as is (an error, no length to follow, or no usable store): relayed from this one request.
      return relayUncacheable(remote, request, result, this.parts.hashing);
    }
    return this.fill(request, { digest, size: length, body: result.response.body!, temp, slot, claim });
  }

  /** Starts the fill the first client (and every joining one) follows. */
  private fill(
    request: PullRequest,
    started: { digest: string; size: number; body: ReadableStream<Uint8Array>; temp: TempBlob; slot: FillSlot; claim: FillClaim },
  ): Response {
    const { digest, size, body, temp, slot, claim } = started;
    const { storage, index, evictor, gate, log, continueWithoutReaders } = this.parts;
    let unfollow = () => {};
    const fill = new Fill({
      digest,
      size,
      body,
      temp,
      storage,
      continueWithoutReaders,
      hashing: this.parts.hashing,
      onIdle: () => {
        unfollow();
        evictor.runIfSkipped(); // it may have skipped this blob while it was still being read
      },
      onSettled: ({ committed, size, error }) => {
        slot.release();
        claim.release(committed);
        if (fill.readerCount === 0) unfollow();
        if (committed) {
          index.putBlob(digest, size);
          void evictor.run();
        } else if (error) {
          log.warn("blob fill failed, nothing cached", { digest, error: error.message });
        }
      },
    });
    unfollow = this.readers.follow(digest, fill);
    gate.learn(request, digest);
    claim.started(fill);
    void fill.start();
    return this.respond(request, size, "MISS", (start, end, init) => handingOff((handoff) => fill.read(start, end, handoff), init));
  }

  /**
   * The committed blob, or undefined to get it from the upstream: a store
   * that fails (a bucket down) costs the client a download, not its pull.
   */
  private async open(digest: string): Promise<StoredBlob | undefined> {
    try {
      return await this.parts.storage.open(digest);
    } catch (error) {
      this.parts.log.warn("cache store failed, fetching the blob from the upstream", { digest, error: (error as Error).message });
      return undefined;
    }
  }

  private async begin(digest: string): Promise<TempBlob | undefined> {
    try {
      return await this.parts.storage.begin(digest);
    } catch (error) {
      this.parts.log.error("cache unwritable, passing the blob through", { digest, error: (error as Error).message });
      return undefined;
    }
  }

  /**
   * The committed blob `digest` as a local file, for the sendfile port, or
   * undefined when it is not (or no longer) cached.
   */
  async committedFile(digest: string): Promise<{ path: string; size: number } | undefined> {
    const { index } = this.parts;
    if (!index.getBlob(digest)) return undefined;
    const stored = await this.open(digest);
    if (!stored?.path) return undefined;
    index.touch(digest);
    return { path: stored.path, size: stored.size };
  }

  /**
   * The committed blob `digest` for another node of the fleet that asked for
   * a fill just as it ended (http/routes/fleet.ts), or undefined when it is
   * not stored here. Eviction spares it until the stream `read` returned ends,
   * or `done` is called (when no stream is read).
   */
  async committedForPeer(digest: string): Promise<{ size: number; read(start: number, end: number): ReadableStream<Uint8Array>; done(): void } | undefined> {
    const { release, allowed } = this.readers.acquire(digest);
    const [stored, mayRead] = await Promise.all([this.parts.storage.open(digest).catch(() => undefined), allowed]);
    if (!stored || !mayRead) {
      release();
      return undefined;
    }
    return { size: stored.size, read: (start, end) => onStreamEnd(stored.stream(start, end), release), done: release };
  }

  /** A hit sent to the sendfile port or the bucket; the client's Range goes along with it (clients resend it). */
  private redirect(request: PullRequest, location: string): Response {
    const headers = new Headers({
      location,
      "content-length": "0",
      [DOCKER_CONTENT_DIGEST]: request.path.reference!,
      [API_VERSION_HEADER]: API_VERSION,
      "x-cache": "HIT",
    });
    return new Response(null, { status: 307, headers: withNamespace(headers, request.route) });
  }

  /** 200 or 206 (or 416) with exact length, digest and cache status; HEAD without a body. */
  private respond(
    request: PullRequest,
    size: number,
    cache: "HIT" | "MISS" | "COALESCED",
    withBody: (start: number, end: number, init: ResponseInit) => Response,
  ): Response {
    const head = blobHead(request.path.reference!, size, request.method, request.headers.get("range"), cache);
    const { status } = head;
    const headers = withNamespace(head.headers, request.route);
    if (head.status === 416 || request.method === "HEAD" || size === 0) return new Response(null, { status, headers });
    return withBody(head.start, head.end, { status, headers });
  }
}

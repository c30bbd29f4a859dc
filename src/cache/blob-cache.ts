/**
 * Blobs through the cache: a hit is served from disk, a blob being filled is
 * joined, a miss starts one fill that the first client and every later one
 * follow (cache/fill.ts). Responses say which in `X-Cache`.
 *
 * A HEAD on a miss goes upstream as a HEAD and fills nothing; Range requests
 * on a miss start a whole-blob fill and are served from it as the bytes
 * arrive (Docker resumes a layer with `Range: bytes=N-` and needs a 206).
 * With a sendfile port, a GET of a committed blob is redirected there
 * (sendfile-redirects.ts). Starting a fill takes a slot of the fill limits
 * (fill-limits.ts); joining one is free.
 */
import { API_VERSION, API_VERSION_HEADER, DOCKER_CONTENT_DIGEST } from "../oci/headers";
import type { Logger } from "../observability/logger";
import type { PullProxy, PullRequest } from "../proxy/pull-proxy";
import type { AccessGate } from "./access-gate";
import type { CacheIndex } from "./cache-index";
import type { Evictor } from "./eviction";
import type { SendfileRedirects } from "./sendfile-redirects";
import { Fill } from "./fill";
import type { FillLimits, RefusalReason } from "./fill-limits";
import { blobHead } from "./blob-head";
import type { Storage, TempBlob } from "./storage";
import { fileResponse } from "../util/file-response";
import { onStreamEnd } from "../util/stream-end";
import { discard } from "../upstream/client";

export class BlobCache {
  /**
   * Fills by digest, from the moment the upstream request starts (so that
   * requests arriving during its round trips join it instead of starting
   * their own) until the last client following it has finished (so that
   * eviction leaves the committed blob alone meanwhile).
   */
  private readonly fills = new Map<string, Promise<Fill | undefined>>();
  private readonly followed = new Map<string, Fill>();
  private readonly reading = new Map<string, number>();

  constructor(
    private readonly storage: Storage,
    private readonly index: CacheIndex,
    private readonly pull: PullProxy,
    private readonly gate: AccessGate,
    private readonly evictor: Evictor,
    private readonly log: Logger,
    private readonly continueWithoutReaders: boolean,
    private readonly limits: FillLimits,
    private readonly sendfile?: SendfileRedirects,
  ) {}

  /** Blob downloads being filled now. */
  get fillsInProgress(): number {
    return this.fills.size;
  }

  /** Fills refused so far by the fill limits, by reason. */
  get fillsRefused(): Readonly<Record<RefusalReason, number>> {
    return this.limits.refused;
  }

  /** Content being read, filled or followed must not be evicted. */
  inUse(digest: string): boolean {
    if ((this.reading.get(digest) ?? 0) > 0 || this.fills.has(digest)) return true;
    const fill = this.followed.get(digest);
    if (fill && fill.readerCount > 0) return true;
    this.followed.delete(digest);
    return false;
  }

  async serve(request: PullRequest): Promise<Response> {
    const digest = request.path.reference!;
    if (!digest.startsWith("sha256:")) return this.pull.pull(request); // we verify sha256 only

    if (this.index.getBlob(digest) || this.fills.has(digest)) {
      const refusal = await this.gate.check(request, digest);
      if (refusal) return refusal;
    }
    // Looked up after the access check, which may have taken a round trip during which a fill ended.
    const release = this.acquire(digest); // before opening: eviction must not pull it away meanwhile
    let handedOver = false;
    try {
      const stored = this.index.getBlob(digest) ? await this.storage.open(digest) : undefined;
      if (stored) {
        this.index.touch(digest);
        const location = request.method === "GET" && stored.path ? this.sendfile?.location(request.origin, digest) : undefined;
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

    const pending = this.fills.get(digest);
    if (pending) {
      const fill = await pending;
      if (fill?.joinable && fill.size !== undefined) {
        return this.respond(request, fill.size, "COALESCED", (start, end, init) => new Response(fill.read(start, end), init));
      }
      return this.pull.pull(request); // the fill could not be joined: this client passes through
    }
    if (request.method === "HEAD") return this.pull.pull(request);
    return this.startFill(request);
  }

  private async startFill(request: PullRequest): Promise<Response> {
    const digest = request.path.reference!;
    const slot = this.limits.reserve(request.client); // throws the 429/503 before anything starts
    let settle!: (fill: Fill | undefined) => void;
    this.fills.set(digest, new Promise((resolve) => (settle = resolve)));
    const forget = () => {
      slot.release();
      this.fills.delete(digest);
      settle(undefined);
    };
    let result;
    try {
      // Not the client's signal: the download belongs to every client that joins it.
      result = await this.pull.fetch({ ...request, signal: undefined }, { method: "GET", withoutRange: true });
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
      // Not cacheable as is (an error, no length to follow, or no usable disk): relay the answer.
      if (result.response.status === 200 && request.headers.has("range")) {
        await result.response.body?.cancel().catch(() => undefined);
        return this.pull.pull(request);
      }
      return this.pull.relay(request, result);
    }
    const fill = new Fill({
      digest,
      size: length,
      body: result.response.body!,
      temp,
      storage: this.storage,
      continueWithoutReaders: this.continueWithoutReaders,
      onIdle: () => {
        this.followed.delete(digest);
        this.evictor.runIfSkipped(); // it may have skipped this blob while it was still being read
      },
      onSettled: ({ committed, size, error }) => {
        slot.release();
        this.fills.delete(digest);
        if (fill.readerCount === 0) this.followed.delete(digest);
        if (committed) {
          this.index.putBlob(digest, size);
          void this.evictor.run();
        } else if (error) {
          this.log.warn("blob fill failed, nothing cached", { digest, error: error.message });
        }
      },
    });
    this.followed.set(digest, fill);
    this.gate.learn(request, digest);
    settle(fill);
    void fill.start();
    return this.respond(request, length, "MISS", (start, end, init) => new Response(fill.read(start, end), init));
  }

  private async begin(digest: string): Promise<TempBlob | undefined> {
    try {
      return await this.storage.begin();
    } catch (error) {
      this.log.error("cache unwritable, passing the blob through", { digest, error: (error as Error).message });
      return undefined;
    }
  }

  /**
   * The committed blob `digest` as a local file, for the sendfile port, or
   * undefined when it is not (or no longer) cached.
   */
  async committedFile(digest: string): Promise<{ path: string; size: number } | undefined> {
    if (!this.index.getBlob(digest)) return undefined;
    const stored = await this.storage.open(digest);
    if (!stored?.path) return undefined;
    this.index.touch(digest);
    return { path: stored.path, size: stored.size };
  }

  /** A hit sent to the sendfile port; the client's Range goes along with it (clients resend it). */
  private redirect(request: PullRequest, location: string): Response {
    const headers = new Headers({
      location,
      "content-length": "0",
      [DOCKER_CONTENT_DIGEST]: request.path.reference!,
      [API_VERSION_HEADER]: API_VERSION,
      "x-cache": "HIT",
    });
    if (request.route.via === "ns") headers.set("oci-namespace", request.route.upstream.registry);
    return new Response(null, { status: 307, headers });
  }

  /** 200 or 206 (or 416) with exact length, digest and cache status; HEAD without a body. */
  private respond(
    request: PullRequest,
    size: number,
    cache: "HIT" | "MISS" | "COALESCED",
    withBody: (start: number, end: number, init: ResponseInit) => Response,
  ): Response {
    const head = blobHead(request.path.reference!, size, request.method, request.headers.get("range"), cache);
    const { status, headers } = head;
    if (request.route.via === "ns") headers.set("oci-namespace", request.route.upstream.registry);
    if (head.status === 416 || request.method === "HEAD" || size === 0) return new Response(null, { status, headers });
    return withBody(head.start, head.end, { status, headers });
  }

  /** Counts a reader of a committed blob until `release` is called (once; later calls do nothing). */
  private acquire(digest: string): () => void {
    this.reading.set(digest, (this.reading.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.reading.get(digest) ?? 1) - 1;
      if (left > 0) this.reading.set(digest, left);
      else {
        this.reading.delete(digest);
        this.evictor.runIfSkipped(); // it may have skipped this blob while it was being read
      }
    };
  }
}

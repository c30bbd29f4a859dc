/**
 * Manifests through the cache.
 *
 * - By digest: immutable, stored with their media type, served only to a
 *   client whose Accept takes that type. Otherwise the upstream is asked with
 *   the client's own Accept, as it would be without docxy (protocol.md fact 4:
 *   an index must never reach a client that did not accept index types).
 * - By tag: the tag → digest answer is remembered per upstream, repository,
 *   tag and *accept class* (what the client can take decides which manifest
 *   the registry returns), trusted for the tag's TTL, then revalidated with a
 *   HEAD (Docker Hub does not count HEADs against the pull quota): one at a
 *   time per tag, and in a fleet one for all nodes, which adopt its answer
 *   (tag-freshness.ts). When the
 *   upstream fails, times out or answers 429/5xx, the last known answer is
 *   served, marked stale; with nothing cached the upstream's error is relayed
 *   as registry JSON. A plain 404 is relayed too, unless `[cache]
 *   keep_deleted` is on (DeletedTags given): then a tag docxy knows is
 *   answered from the cache, with a Warning, to a client the access gate lets
 *   read what it was (deleted-tags.ts, access-gate.ts).
 *
 * What only the upstream can answer goes back to the cache front
 * (cache-front.ts) as "pass-through": a HEAD by digest not cached, a GET by
 * tag whose HEAD said anything but 200 (the client needs that answer's body).
 * Manifests are stored in the blob storage and the index like blobs, with
 * their media type. A shared store (a fleet's bucket) may hold what this
 * node's index does not know: a tag's HEAD names the digest and media type to
 * look for there; a manifest by digest is looked up there too, and names its
 * own media type.
 */
import { RegistryError } from "../oci/errors";
import { DOCKER_CONTENT_DIGEST } from "../oci/headers";
import { manifestHeaders, withNamespace, type ManifestFacts } from "../oci/responses";
import type { PullRequest } from "../proxy/pull-request";
import { MANIFEST_LIMIT, readCapped } from "../upstream/body-limit";
import { discard } from "../upstream/client";
import type { AccessGate } from "./access-gate";
import { acceptClass, accepts } from "./accept";
import type { BlobStorage } from "./blob-storage";
import type { Answer } from "./cache-front";
import type { CacheIndex } from "./cache-index";
import type { Remote } from "./remote";
import { NOTHING_SHARED, type TagAnswer, type TagKey } from "./shared-knowledge";
import type { DeletedTags } from "./deleted-tags";
import { TagFreshness } from "./tag-freshness";

export class ManifestCache {
  constructor(
    private readonly storage: BlobStorage,
    private readonly index: CacheIndex,
    private readonly remote: Remote,
    private readonly gate: AccessGate,
    private readonly tagTtlMs: (repository: string, tag: string) => number,
    private readonly freshness = new TagFreshness(index, NOTHING_SHARED),
    /** Set with `[cache] keep_deleted`: deleted tags keep their last known manifest. */
    private readonly deleted?: DeletedTags,
  ) {}

  /** The manifest `request` names, or "pass-through" when only the upstream can answer it. */
  serve(request: PullRequest): Promise<Answer> {
    return request.path.reference!.includes(":") ? this.byDigest(request) : this.byTag(request);
  }

  private async byDigest(request: PullRequest): Promise<Answer> {
    const digest = request.path.reference!;
    const known = this.index.getBlob(digest);
    if (known?.mediaType && accepts(request.headers.get("accept"), known.mediaType)) {
      const refusal = await this.gate.check(request, digest);
      if (refusal) return refusal;
      const cached = await this.fromStore(request, { digest, mediaType: known.mediaType, size: known.size }, "HIT");
      if (cached) return cached;
    }
    const shared = known ? undefined : await this.fromSharedStore(digest);
    if (shared && accepts(request.headers.get("accept"), shared.mediaType)) {
      // Adopted only past the same gate as any hit.
      const refusal = await this.gate.check(request, digest);
      if (refusal) return refusal;
      this.index.putBlob(digest, shared.bytes.length, shared.mediaType);
      return manifestResponse(request, { digest, mediaType: shared.mediaType, size: shared.bytes.length }, shared.bytes, "HIT");
    }
    if (request.method === "HEAD") return "pass-through";
    return this.fetchAndStore(request, digest);
  }

  /**
   * A manifest another node of a fleet stored in the shared bucket, which keeps no media type:
   * the manifest's own `mediaType` names it (Docker's always do, OCI's in practice). Without one
   * it is fetched as if not stored. Bytes in the bucket were verified against the digest at commit.
   */
  private async fromSharedStore(digest: string): Promise<{ mediaType: string; bytes: Uint8Array } | undefined> {
    if (!this.storage.shared) return undefined;
    const stored = await this.storage.open(digest).catch(() => undefined);
    if (!stored || stored.size === 0 || stored.size > MANIFEST_LIMIT.bytes) return undefined;
    try {
      const bytes = new Uint8Array(await new Response(stored.stream(0, stored.size - 1)).arrayBuffer());
      const { mediaType } = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown };
      return typeof mediaType === "string" && mediaType !== "" ? { mediaType, bytes } : undefined;
    } catch {
      return undefined; // not JSON (a blob under that digest), or the store failed mid-read: the upstream answers
    }
  }

  private async byTag(request: PullRequest): Promise<Answer> {
    const repository = this.remote.upstreamName(request);
    const tag = request.path.reference!;
    const key: TagKey = { upstream: request.route.upstream.name, repository, tag, acceptKey: acceptClass(request.headers.get("accept")) };
    const ttlMs = this.tagTtlMs(repository, tag);
    const known = this.index.getTag(key.upstream, repository, tag, key.acceptKey);
    if (known && Date.now() - known.fetchedAt < ttlMs) return this.answerTag(request, key, ttlMs, known, true);
    // Another request, or another node of a fleet, may be revalidating it or have just done so.
    const end = await this.freshness.turn(key, ttlMs);
    try {
      const current = this.index.getTag(key.upstream, repository, tag, key.acceptKey);
      return await this.answerTag(request, key, ttlMs, current, current !== undefined && Date.now() - current.fetchedAt < ttlMs);
    } finally {
      end();
    }
  }

  /** The tag's manifest from `known` when `fresh`, otherwise (or when its bytes are gone) after a HEAD upstream. */
  private async answerTag(request: PullRequest, key: TagKey, ttlMs: number, known: TagAnswer | undefined, fresh: boolean): Promise<Answer> {
    if (known && fresh) {
      const refusal = await this.gate.check(request, known.digest);
      if (refusal) return refusal;
      const cached = await this.fromStore(request, known, "HIT");
      if (cached) return cached;
    }

    let result;
    try {
      result = await this.remote.fetch(request, { method: "HEAD" });
    } catch (error) {
      if (error instanceof RegistryError && known) return this.stale(request, known, error.message);
      throw error;
    }
    const { response } = result;
    const digest = response.headers.get(DOCKER_CONTENT_DIGEST);
    const mediaType = response.headers.get("content-type")?.split(";")[0]?.trim();
    const size = Number(response.headers.get("content-length"));
    if (response.status === 200 && digest?.startsWith("sha256:") && mediaType && Number.isSafeInteger(size)) {
      const target = { digest, mediaType, size };
      this.freshness.record(key, target, ttlMs);
      this.gate.learn(request, digest);
      if (request.method === "HEAD") {
        const relayed = await this.remote.relay(request, result);
        relayed.headers.set("x-cache", known ? "REVALIDATED" : "MISS");
        return relayed;
      }
      const cached = await this.fromStore(request, target, "REVALIDATED");
      if (cached) return cached;
      return this.fetchAndStore(request, digest);
    }
    // A 401 to an offline token means the registry answers but its token service does not:
    // trouble too, for this client.
    const trouble = response.status === 429 || response.status >= 500 || (response.status === 401 && this.gate.offline(request));
    if (known && trouble) {
      await discard(response);
      return this.stale(request, known, `upstream answered ${response.status}`);
    }
    // Only a 404 means "deleted": 401 and 403 are refusals, and Docker Hub answers 401 for a
    // repository that does not exist as well as for one the client may not read. Whether this
    // client may have what the tag was is the gate's question (a 404 can hide a private one).
    if (known && response.status === 404 && this.deleted) {
      const kept = await this.kept(request, key, known, this.deleted);
      if (kept) return kept;
    }
    if (request.method === "HEAD") return this.remote.relay(request, result);
    await discard(response);
    // A GET needs the body: the manifest itself (the HEAD had no usable digest), or the error's JSON.
    return response.status === 200 ? this.fetchAndStore(request, undefined, { key, ttlMs }) : "pass-through";
  }

  /** GETs the manifest (by `digest`, or by the request's `tag`), verifies and stores it, and answers with it. */
  private async fetchAndStore(request: PullRequest, digest?: string, tag?: { key: TagKey; ttlMs: number }): Promise<Response> {
    // Whole, whatever Range the client sent (containerd 2.x sends bytes=0-): it is verified and stored.
    const result = await this.remote.fetch(request, { method: "GET", reference: digest, withoutRange: true });
    const { response } = result;
    if (response.status !== 200) return this.remote.relay(request, result);
    // Counted as it arrives: a chunked answer announces no length to check beforehand.
    const bytes = await readCapped(response, MANIFEST_LIMIT, request.route.upstream.name);
    const actual = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
    const expected = digest ?? response.headers.get(DOCKER_CONTENT_DIGEST) ?? actual;
    if (actual !== expected) {
      throw new RegistryError("MANIFEST_INVALID", `upstream manifest does not match its digest ${expected}`, { status: 502 });
    }
    const mediaType = response.headers.get("content-type")?.split(";")[0]?.trim() ?? "application/octet-stream";
    await this.store(actual, bytes, mediaType);
    this.gate.learn(request, actual);
    if (tag) this.freshness.record(tag.key, { digest: actual, mediaType, size: bytes.length }, tag.ttlMs);
    return manifestResponse(request, { digest: actual, mediaType, size: bytes.length }, bytes, "MISS");
  }

  private async store(digest: string, bytes: Uint8Array, mediaType: string): Promise<void> {
    try {
      const temp = await this.storage.begin(digest);
      try {
        await temp.write(bytes);
        await temp.commit(digest);
      } catch (error) {
        await temp.abort();
        throw error;
      }
      this.index.putBlob(digest, bytes.length, mediaType);
    } catch {
      // A full or broken cache only costs the next pull a round trip.
    }
  }

  /**
   * The cached manifest as a response, or undefined when its bytes are not
   * (or no longer) stored. Within the manifest cap it is read whole: one
   * buffer is the fastest answer (a stream through node:http cost a third of
   * the cached-GET rate in the bench) and the cap bounds it. Anything larger
   * can only have been stored before the cap existed, and is streamed, so
   * concurrent hits of it cost disk reads, not a copy each.
   */
  private async fromStore(request: PullRequest, known: ManifestFacts, cache: string): Promise<Response | undefined> {
    if (request.method === "HEAD") return manifestResponse(request, known, null, cache);
    // A store that fails (a bucket down) costs the client a round trip upstream, not its pull.
    const stored = await this.storage.open(known.digest).catch(() => undefined);
    if (!stored) return undefined;
    // Another node of a fleet may have stored it (a shared bucket): the tag's HEAD gave its media type.
    if (!this.index.getBlob(known.digest)) this.index.putBlob(known.digest, stored.size, known.mediaType);
    this.index.touch(known.digest);
    const stream = stored.stream(0, stored.size - 1);
    let body: Uint8Array | ReadableStream<Uint8Array> = stream;
    if (stored.size <= MANIFEST_LIMIT.bytes) {
      const bytes = await new Response(stream).arrayBuffer().catch(() => undefined);
      if (!bytes) return undefined; // the store failed between HEAD and GET: the upstream answers
      body = new Uint8Array(bytes);
    }
    return manifestResponse(request, { ...known, size: stored.size }, body, cache);
  }

  /**
   * The last known answer while the upstream fails. Access is still checked:
   * a repository not known to be public cannot be proven while the upstream
   * is down, and then the client gets the upstream error, not the content.
   */
  private async stale(request: PullRequest, known: ManifestFacts, reason: string): Promise<Response> {
    const refusal = await this.gate.check(request, known.digest);
    if (refusal) return refusal;
    const cached = await this.fromStore(request, known, "STALE");
    if (!cached) throw new RegistryError("UNAVAILABLE", reason, { status: 503 });
    cached.headers.set("warning", '110 docxy "Response is Stale"');
    return cached;
  }

  /** `known` for a tag the upstream deleted, or undefined when the gate refuses it or its bytes are gone. */
  private async kept(request: PullRequest, key: TagKey, known: ManifestFacts, deleted: DeletedTags): Promise<Response | undefined> {
    if (await this.gate.check(request, known.digest)) return undefined;
    const cached = await this.fromStore(request, known, "STALE");
    if (!cached) return undefined;
    cached.headers.set("warning", deleted.warning(request.route.upstream.registry, key));
    deleted.kept(key, known.digest);
    return cached;
  }
}

function manifestResponse(request: PullRequest, known: ManifestFacts, body: Uint8Array | ReadableStream<Uint8Array> | null, cache: string): Response {
  const headers = withNamespace(manifestHeaders(known, cache), request.route);
  return new Response(request.method === "HEAD" ? null : body, { headers });
}

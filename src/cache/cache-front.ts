/**
 * The registry reads with the cache in front of the remote, and the one
 * place that decides a read passes straight through. Blobs and manifests go
 * through their caches; tag lists and referrers change too often to keep.
 *
 * Where a blob miss goes, one hop each: here → the blob cache
 * (blob-cache.ts) → the coordination (coordination.ts: join or claim the
 * fill) → the remote (remote.ts) → the blob storage and the index.
 *
 * Passed through, and why:
 * - tag lists and referrers: never cached;
 * - a blob by a digest other than sha256: only sha256 is verified;
 * - whatever a cache hands back as "pass-through": a HEAD on a blob or
 *   manifest not cached (a HEAD fills nothing), a fill that cannot be joined,
 *   a GET by tag the upstream did not answer 200 to.
 */
import type { PullRequest, RegistryReads } from "../proxy/pull-request";
import type { BlobCache } from "./blob-cache";
import type { ManifestCache } from "./manifest-cache";
import type { Remote } from "./remote";

/** A cache's answer, or its word that only the upstream can answer. */
export type Answer = Response | "pass-through";

export class CacheFront implements RegistryReads {
  constructor(
    private readonly blobs: BlobCache,
    private readonly manifests: ManifestCache,
    private readonly remote: Remote,
  ) {}

  async answer(request: PullRequest): Promise<Response> {
    const answer = await this.cached(request);
    return answer === "pass-through" ? this.remote.forward(request) : answer;
  }

  private cached(request: PullRequest): Promise<Answer> | Answer {
    switch (request.path.kind) {
      case "blobs":
        return request.path.reference!.startsWith("sha256:") ? this.blobs.serve(request) : "pass-through";
      case "manifests":
        return this.manifests.serve(request);
      default:
        return "pass-through";
    }
  }
}

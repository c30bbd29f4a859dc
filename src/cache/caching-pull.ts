/**
 * The pull API with the cache in front of the pass-through: blobs and
 * manifests go through their caches; tag lists and referrers change too often
 * to keep and pass straight through.
 */
import type { PullProxy, PullRequest } from "../proxy/pull-proxy";
import type { BlobCache } from "./blob-cache";
import type { ManifestCache } from "./manifest-cache";

export interface Puller {
  pull(request: PullRequest): Promise<Response>;
}

export class CachingPull implements Puller {
  constructor(
    private readonly blobs: BlobCache,
    private readonly manifests: ManifestCache,
    private readonly passThrough: PullProxy,
  ) {}

  pull(request: PullRequest): Promise<Response> {
    switch (request.path.kind) {
      case "blobs":
        return this.blobs.serve(request);
      case "manifests":
        return this.manifests.serve(request);
      default:
        return this.passThrough.pull(request);
    }
  }
}

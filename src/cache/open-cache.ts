/**
 * Builds the cache from `[cache]` at startup. A cache directory that cannot
 * be used (unwritable, corrupt index) must not take the proxy down: docxy
 * logs why and runs as a pure forwarder.
 */
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import type { Config } from "../config/schema";
import type { Logger } from "../observability/logger";
import type { PullProxy } from "../proxy/pull-proxy";
import type { AuthDiscovery } from "../upstream/auth-discovery";
import type { UpstreamAuth } from "../upstream/upstream-auth";
import type { UpstreamClient } from "../upstream/client";
import type { CredentialMemory } from "../auth/credential-memory";
import { AccessGate } from "./access-gate";
import { BlobCache } from "./blob-cache";
import { FillLimits } from "./fill-limits";
import { CacheIndex } from "./cache-index";
import { CachingPull, type Puller } from "./caching-pull";
import { Evictor } from "./eviction";
import { FsStorage } from "./fs-storage";
import { ManifestCache } from "./manifest-cache";
import type { SendfileRedirects } from "./sendfile-redirects";
import type { Storage } from "./storage";
import { tagTtl } from "./tag-ttl";

export interface CacheParts {
  client: UpstreamClient;
  discovery: AuthDiscovery;
  pull: PullProxy;
  upstreamAuth: UpstreamAuth;
  log: Logger;
  /** Whose tokens docxy relayed: private content stays readable to its readers while the token service is in trouble. */
  credentials: CredentialMemory;
  /** Set when hits go to the sendfile port. */
  sendfile?: SendfileRedirects;
}

/** The cache's parts the operator-facing side (metrics, admin API, status page) reads. */
export interface CacheHandle {
  dir: string;
  maxBytes: number;
  index: CacheIndex;
  storage: Storage;
  blobs: BlobCache;
}

export async function openCache(config: Config["cache"], parts: CacheParts): Promise<{ puller: Puller; cache?: CacheHandle }> {
  if (!config.enabled) return { puller: parts.pull };
  const dir = resolve(config.dir);
  let storage: FsStorage;
  let index: CacheIndex;
  try {
    storage = await FsStorage.open(dir);
    index = openIndex(resolve(dir, "index.sqlite"), parts.log);
    const present: { digest: string; size: number }[] = [];
    for await (const blob of storage.list()) present.push(blob);
    index.syncBlobs(present);
  } catch (error) {
    parts.log.error("cache disabled: its directory cannot be used; serving as a pure forwarder", { dir, error: (error as Error).message });
    return { puller: parts.pull };
  }

  const gate = new AccessGate(index, parts.pull, parts.credentials);
  let blobs: BlobCache | undefined;
  const maxBytes = config.max_size;
  const evictor = new Evictor({
    index,
    storage,
    maxBytes,
    maxAgeMs: config.max_age,
    inUse: (digest) => blobs?.inUse(digest) ?? false,
    log: (message, fields) => parts.log.warn(message, fields),
  });
  const limits = new FillLimits({
    maxFills: config.max_fills,
    maxFillsPerClient: config.max_fills_per_client,
    maxFillBytes: config.max_fill_bytes || maxBytes,
  });
  blobs = new BlobCache(storage, index, parts.pull, gate, evictor, parts.log, config.continue_on_disconnect, limits, parts.sendfile);
  const manifests = new ManifestCache(storage, index, parts.pull, gate, tagTtl(config.tag_ttl, config.tag_ttl_overrides));
  void evictor.run();
  parts.log.info("cache ready", { dir, max_size: String(config.max_size), bytes: index.totalBytes() });
  return { puller: new CachingPull(blobs, manifests, parts.pull), cache: { dir, maxBytes, index, storage, blobs } };
}

/**
 * The index holds only what can be rebuilt or relearnt (sizes from the files,
 * tags and public-repository answers from upstream), so a corrupt one is
 * replaced rather than costing the whole cache.
 */
function openIndex(path: string, log: Logger): CacheIndex {
  try {
    return CacheIndex.open(path);
  } catch (error) {
    log.warn("cache index unusable, starting a new one", { path, error: (error as Error).message });
    for (const file of [path, `${path}-wal`, `${path}-shm`]) rmSync(file, { force: true });
    return CacheIndex.open(path);
  }
}

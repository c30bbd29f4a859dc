/**
 * Builds the cache from `[cache]` at startup. A cache directory that cannot
 * be used (unwritable, corrupt index) must not take the proxy down: docxy
 * logs why and runs as a pure forwarder.
 *
 * Here the cache's ports get their implementations: the blob storage
 * (FsStorage), the index (SqliteIndex), the coordination (LocalCoordination
 * of a single node, or RedisCoordination when the node is part of a fleet),
 * and the remote the composition root hands over (the pass-through). The
 * fleet (issue 16) chooses its S3 store and Redis index here too, and
 * nothing else in the cache changes.
 */
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import type { CredentialMemory } from "../auth/credential-memory";
import type { Config } from "../config/schema";
import type { Fleet } from "../fleet/fleet";
import type { Logger } from "../observability/logger";
import type { RegistryReads } from "../proxy/pull-request";
import { AccessGate } from "./access-gate";
import { BlobCache } from "./blob-cache";
import type { BlobStorage } from "./blob-storage";
import { CacheFront } from "./cache-front";
import type { CacheIndex } from "./cache-index";
import type { FillInProgress } from "./coordination";
import { Evictor } from "./eviction";
import { FillLimits } from "./fill-limits";
import { FsStorage } from "./fs-storage";
import { LocalCoordination } from "./local-coordination";
import { ManifestCache } from "./manifest-cache";
import { RedisCoordination } from "./redis-coordination";
import type { Remote } from "./remote";
import type { SendfileRedirects } from "./sendfile-redirects";
import { SqliteIndex } from "./sqlite-index";
import { tagTtl } from "./tag-ttl";

export interface CacheParts {
  /** What the cache fills from, and what answers every read when the cache is off (proxy/pass-through.ts). */
  remote: Remote;
  log: Logger;
  /** Whose tokens docxy relayed: private content stays readable to its readers while the token service is in trouble. */
  credentials: CredentialMemory;
  /** Set when hits go to the sendfile port. */
  sendfile?: SendfileRedirects;
  /** Set when this node is part of a fleet: fills are coordinated through its Redis. */
  fleet?: Fleet;
}

/** The cache's parts the operator-facing side (metrics, admin API, status page) reads. */
export interface CacheHandle {
  dir: string;
  maxBytes: number;
  index: CacheIndex;
  storage: BlobStorage;
  blobs: BlobCache;
  /** The fill of a blob this node downloads for the fleet (always undefined on a single node). */
  ownFill(digest: string): Promise<FillInProgress | undefined> | undefined;
}

export async function openCache(config: Config["cache"], parts: CacheParts): Promise<{ reads: RegistryReads; cache?: CacheHandle }> {
  const { remote, log } = parts;
  const passThrough: RegistryReads = { answer: (request) => remote.forward(request) };
  if (!config.enabled) return { reads: passThrough };
  const dir = resolve(config.dir);
  let storage: FsStorage;
  let index: SqliteIndex;
  try {
    storage = await FsStorage.open(dir);
    index = openIndex(resolve(dir, "index.sqlite"), log);
    const present: { digest: string; size: number }[] = [];
    for await (const blob of storage.list()) present.push(blob);
    index.syncBlobs(present);
  } catch (error) {
    log.error("cache disabled: its directory cannot be used; serving as a pure forwarder", { dir, error: (error as Error).message });
    return { reads: passThrough };
  }

  const coordination = parts.fleet ? new RedisCoordination(parts.fleet.leases, parts.fleet.signer) : new LocalCoordination();
  const gate = new AccessGate(index, remote, parts.credentials);
  let blobs: BlobCache | undefined;
  const maxBytes = config.max_size;
  const evictor = new Evictor({
    index,
    storage,
    coordination,
    maxBytes,
    maxAgeMs: config.max_age,
    inUse: (digest) => blobs?.inUse(digest) ?? false,
    log: (message, fields) => log.warn(message, fields),
  });
  const limits = new FillLimits({
    maxFills: config.max_fills,
    maxFillsPerClient: config.max_fills_per_client,
    maxFillBytes: config.max_fill_bytes || maxBytes,
  });
  blobs = new BlobCache({
    storage,
    index,
    remote,
    coordination,
    gate,
    evictor,
    limits,
    log,
    continueWithoutReaders: config.continue_on_disconnect,
    sendfile: parts.sendfile,
  });
  const manifests = new ManifestCache(storage, index, remote, gate, tagTtl(config.tag_ttl, config.tag_ttl_overrides));
  void evictor.run();
  log.info("cache ready", { dir, max_size: String(config.max_size), bytes: index.totalBytes() });
  return { reads: new CacheFront(blobs, manifests, remote), cache: {
      dir,
      maxBytes,
      index,
      storage,
      blobs,
      ownFill: (digest) => (coordination instanceof RedisCoordination ? coordination.ownFill(digest) : undefined),
    },
  };
}

/**
 * The index holds only what can be rebuilt or relearnt (sizes from the files,
 * tags and public-repository answers from upstream), so a corrupt one is
 * replaced rather than costing the whole cache.
 */
function openIndex(path: string, log: Logger): SqliteIndex {
  try {
    return SqliteIndex.open(path);
  } catch (error) {
    log.warn("cache index unusable, starting a new one", { path, error: (error as Error).message });
    for (const file of [path, `${path}-wal`, `${path}-shm`]) rmSync(file, { force: true });
    return SqliteIndex.open(path);
  }
}

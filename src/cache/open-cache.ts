/**
 * Builds the cache from `[cache]` at startup. A cache directory that cannot
 * be used (unwritable, corrupt index) must not take the proxy down: docxy
 * logs why and runs as a pure forwarder.
 *
 * Here the cache's ports get their implementations: the blob storage
 * (FsStorage under `dir`, or with `storage = "s3"` the bucket of a fleet,
 * S3Storage, spooling under `dir`, behind a TieredStorage hot tier under
 * `dir` when `[cache.s3] hot_tier_size` is set), the index (SqliteIndex, under `dir` in
 * both cases: a node's own knowledge, which a shared bucket completes on
 * demand, see BlobStorage.shared), the coordination (LocalCoordination of a
 * single node, or RedisCoordination when the node is part of a fleet), what
 * the node learns from the upstream (NOTHING_SHARED on a single node, the
 * fleet's FleetSharedKnowledge in Redis otherwise), and
 * the remote the composition root hands over (the pass-through). On a
 * fleet's shared bucket, the index also records into the fleet's ledger and
 * the bucket is evicted from that ledger, one node at a time
 * (fleet/shared-lru.ts, fleet/fleet-eviction.ts). A bucket
 * that does not answer at start is logged and used all the same, failing
 * (hits and fills fall back to the upstream as when it goes down later), so
 * the node uses it again once it answers, with no restart. With
 * `[cache.s3] presigned_redirect`, the bucket also signs the URLs blob hits
 * are redirected to (presigned-redirects.ts). A fleet node fans out the fills it follows
 * from other nodes through its own store or `dir/follow` (followTarget).
 */
import { rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import type { CredentialMemory } from "../auth/credential-memory";
import type { Config } from "../config/schema";
import type { Fleet } from "../fleet/fleet";
import { FleetEvictor, type PurgeResult } from "../fleet/fleet-eviction";
import { type FollowTarget, followPeers } from "../fleet/followed-fill";
import { recordingInto, SharedLru } from "../fleet/shared-lru";
import type { Logger } from "../observability/logger";
import type { RegistryReads } from "../proxy/pull-request";
import { AccessGate } from "./access-gate";
import { BlobCache } from "./blob-cache";
import type { BlobStorage } from "./blob-storage";
import { CacheFront } from "./cache-front";
import type { CacheIndex } from "./cache-index";
import type { FillInProgress } from "./coordination";
import { DeletedTags } from "./deleted-tags";
import { Evictor } from "./eviction";
import { FillLimits } from "./fill-limits";
import { FsStorage } from "./fs-storage";
import { IN_THREAD, type Hashing } from "./hashing";
import { OffThreadHashing } from "./hashing-thread";
import { LocalCoordination } from "./local-coordination";
import { ManifestCache } from "./manifest-cache";
import { RedisCoordination } from "./redis-coordination";
import { PresignedRedirects } from "./presigned-redirects";
import type { Remote } from "./remote";
import { S3Storage } from "./s3-storage";
import { NOTHING_SHARED } from "./shared-knowledge";
import type { SendfileRedirects } from "./sendfile-redirects";
import { SqliteIndex } from "./sqlite-index";
import { TagFreshness } from "./tag-freshness";
import { tagTtl } from "./tag-ttl";
import { TieredStorage } from "./tiered-storage";
import { type StorageStatus, WatchedStorage } from "./watched-storage";

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
  /** Where `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` are read when `[cache.s3]` has no keys (default: process.env). */
  env?: Record<string, string | undefined>;
}

/** The cache's parts the operator-facing side (metrics, admin API, status page) reads. */
export interface CacheHandle {
  dir: string;
  maxBytes: number;
  index: CacheIndex;
  storage: BlobStorage;
  blobs: BlobCache;
  /**
   * Purges one blob for the admin API. On a fleet's shared bucket through the fleet's evictor
   * (never under a reader on any node, the ledger kept right; see FleetEvictor.purge); otherwise
   * from this node's index and store, as eviction here does.
   */
  purge(digest: string): Promise<PurgeResult>;
  /** On a fleet's shared bucket: the fleet's cached bytes per its ledger, as last read in the background (undefined elsewhere, or until Redis answered). */
  fleetBytes(): number | undefined;
  /** The fill of a blob this node downloads for the fleet (always undefined on a single node). */
  ownFill(digest: string): Promise<FillInProgress | undefined> | undefined;
}

export interface OpenedCache {
  reads: RegistryReads;
  cache?: CacheHandle;
  /** The blob storage's state for `/health` and its failure count, read live; undefined when the cache is off. */
  storage?: () => StorageStatus;
}

export async function openCache(config: Config["cache"], parts: CacheParts): Promise<OpenedCache> {
  const { remote, log } = parts;
  const passThrough: RegistryReads = { answer: (request) => remote.forward(request) };
  if (!config.enabled) return { reads: passThrough };
  const dir = resolve(config.dir);
  let storage: WatchedStorage;
  let index: SqliteIndex;
  let blobs: BlobCache | undefined;
  let presigned: PresignedRedirects | undefined;
  // The hot tier spares the copies clients read, as eviction does (blobs exists before any read).
  const inUse = (digest: string) => blobs?.inUse(digest) ?? false;
  try {
    const opened = await openStorage(config, dir, parts.env ?? process.env, inUse);
    if (opened.unreachable) {
      log.warn("cache: the bucket does not answer; pulls go to the upstream until it does, then the cache is used again", {
        ...bucketOf(config),
        error: opened.unreachable,
      });
    }
    storage = new WatchedStorage(opened.store, config.storage, opened.unreachable);
    if (opened.bucket && config.s3.presigned_redirect) presigned = new PresignedRedirects(opened.bucket, config.s3.presigned_ttl);
  } catch (error) {
    const reason = (error as Error).message;
    log.error(`cache disabled: its ${config.storage === "s3" ? "spool directory" : "directory"} cannot be used; serving as a pure forwarder`, {
      dir,
      ...bucketOf(config),
      error: reason,
    });
    const status = WatchedStorage.unusable(config.storage, reason);
    return { reads: passThrough, storage: () => status };
  }
  try {
    index = openIndex(resolve(dir, "index.sqlite"), log);
    // A bucket may hold more than a start should wait for: listed in the background (see syncIndex).
    if (!storage.shared) await syncIndex(storage, index);
    else {
      void syncIndex(storage, index).then(
        () => log.info("cache index matched to the bucket", { entries: index.entries() }),
        (error) => log.warn("cache index not matched to the bucket: listing it failed", { error: (error as Error).message }),
      );
    }
  } catch (error) {
    log.error("cache disabled: its directory cannot be used; serving as a pure forwarder", { dir, error: (error as Error).message });
    return { reads: passThrough, storage: () => WatchedStorage.unusable(config.storage, (error as Error).message) };
  }

  const hashing = hashingFor(availableParallelism());
  const follow = parts.fleet ? await followTarget(storage, dir, log, config.continue_on_disconnect, hashing, (digest, size) => {
    index.putBlob(digest, size);
    void evictor.run();
  }) : undefined;
  const coordination = parts.fleet
    ? new RedisCoordination(parts.fleet.leases, parts.fleet.signer, follow && followPeers(follow))
    : new LocalCoordination();
  // A fleet's shared bucket is accounted and evicted from the fleet's ledger in Redis, one node at
  // a time; a store of this node's own (a single node, or a fleet node on its disk) from its index.
  const lru = parts.fleet && storage.shared ? new SharedLru(parts.fleet.redis) : undefined;
  if (lru) index = recordingInto(index, lru);
  const knowledge = parts.fleet?.knowledge ?? NOTHING_SHARED;
  const gate = new AccessGate(index, remote, parts.credentials, knowledge, config.keep_deleted);
  const maxBytes = config.max_size;
  const limitsOf = {
    storage,
    index,
    maxBytes,
    maxAgeMs: config.max_age,
    inUse,
    log: (message: string, fields: Record<string, string | number>) => log.warn(message, fields),
  };
  const evictor = lru ? new FleetEvictor({ ...limitsOf, redis: parts.fleet!.redis, lru }) : new Evictor({ ...limitsOf, coordination });
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
    hashing,
    sendfile: parts.sendfile,
    presigned,
    readers: lru,
  });
  const ttl = tagTtl(config.tag_ttl, config.tag_ttl_overrides);
  const deleted = config.keep_deleted ? new DeletedTags(log) : undefined;
  const manifests = new ManifestCache(storage, index, remote, gate, ttl, new TagFreshness(index, knowledge), deleted);
  void evictor.run();
  log.info("cache ready", { dir, storage: config.storage, ...bucketOf(config), max_size: String(config.max_size), bytes: index.totalBytes() });
  return {
    reads: new CacheFront(blobs, manifests, remote),
    cache: {
      dir,
      maxBytes,
      index,
      storage,
      blobs,
      purge: evictor instanceof FleetEvictor ? (digest) => evictor.purge(digest) : (digest) => purgeOwn(index, storage, digest),
      fleetBytes: () => lru?.fleetBytes,
      ownFill: (digest) => (coordination instanceof RedisCoordination ? coordination.ownFill(digest) : undefined),
    },
    storage: () => storage.status,
  };
}

/** A purge from a store of this node's own: whatever reads it (the admin's call, as before). */
async function purgeOwn(index: CacheIndex, storage: BlobStorage, digest: string): Promise<PurgeResult> {
  if (index.getBlob(digest) === undefined) return "absent";
  index.removeBlob(digest);
  await storage.delete(digest);
  return "removed";
}

/**
 * Where a fleet node fans out a fill it follows from another node
 * (fleet/followed-fill.ts): its own store when that is a directory (the copy
 * stays, verified, and is indexed), or, on the shared bucket the owner
 * commits to, `<dir>/follow`, emptied at start (what a crash left there was
 * only ever a pass-through copy). Undefined when that directory is unusable:
 * clients then follow the owner per read.
 */
async function followTarget(
  storage: BlobStorage,
  dir: string,
  log: Logger,
  continueWithoutReaders: boolean,
  hashing: Hashing,
  committed: (digest: string, size: number) => void,
): Promise<FollowTarget | undefined> {
  if (!storage.shared) return { storage, keep: true, continueWithoutReaders, committed, log, hashing };
  const followDir = join(dir, "follow");
  try {
    rmSync(followDir, { recursive: true, force: true });
    return { storage: await FsStorage.open(followDir), keep: false, continueWithoutReaders: false, log, hashing };
  } catch (error) {
    log.warn("no directory to fan out followed fills; clients follow the owner node per read", { dir: followDir, error: (error as Error).message });
    return undefined;
  }
}

/**
 * Where fills hash: on a worker thread when the machine has a core to spare
 * for it, else on the request thread. On the 2-core bench machine the other
 * core is already busy (Bun's HTTP client and disk threads, the kernel's
 * loopback work, the clients): a cold 1 GiB blob ran at 200 MB/s with the
 * worker against 218 MB/s without, measured side by side (BENCHMARKS.md,
 * issue 17). With more cores SHA-256 (400-800 MB/s per core here) no longer
 * shares the thread every byte crosses.
 */
export function hashingFor(cpus: number): Hashing {
  return cpus > 2 ? new OffThreadHashing() : IN_THREAD;
}

/** Which bucket, for the log: the endpoint's origin only, as it could carry userinfo. */
function bucketOf(config: Config["cache"]): { bucket?: string; endpoint?: string } {
  return config.storage === "s3" ? { bucket: config.s3.bucket, endpoint: new URL(config.s3.endpoint).origin } : {};
}

/**
 * The store, or a throw when it cannot be used at all (a directory or spool that cannot be
 * written). A bucket that does not answer is no throw: `unreachable` says why.
 */
async function openStorage(
  config: Config["cache"],
  dir: string,
  env: Record<string, string | undefined>,
  inUse: (digest: string) => boolean,
): Promise<{ store: BlobStorage; bucket?: S3Storage; unreachable?: string }> {
  if (config.storage !== "s3") return { store: await FsStorage.open(dir) };
  const { endpoint, bucket, region, prefix, hot_tier_size } = config.s3;
  const s3 = await S3Storage.prepare({
    endpoint,
    bucket,
    region,
    prefix,
    accessKeyId: config.s3.access_key_id || env.AWS_ACCESS_KEY_ID || "",
    secretAccessKey: config.s3.secret_access_key || env.AWS_SECRET_ACCESS_KEY || "",
    spoolDir: join(dir, "spool"),
  });
  const unreachable = await s3.reach().then(
    () => undefined,
    (error: Error) => error.message,
  );
  const store = hot_tier_size > 0 ? await TieredStorage.open({ bucket: s3, dir: join(dir, "hot"), maxBytes: hot_tier_size, inUse }) : s3;
  // The bucket itself too: it signs presigned redirects (whatever tier is in front of it).
  return { store, bucket: s3, unreachable };
}

/**
 * Matches the index to what the store holds (after a crash, a restart, or
 * content deleted by hand or by another node). A shared bucket holds what
 * every node stored: this node's index keeps to what it served, pruned of
 * what is gone, and adopts the rest when asked for it (blob-cache.ts), so a
 * node does not count, nor evict, the whole fleet's content as its own. In
 * the background, a blob committed while its key was already listed loses
 * its entry: the next request finds it in the bucket and adopts it again.
 */
async function syncIndex(storage: BlobStorage, index: SqliteIndex): Promise<void> {
  const present: { digest: string; size: number }[] = [];
  for await (const blob of storage.list()) {
    if (!storage.shared || index.getBlob(blob.digest)) present.push(blob);
  }
  index.syncBlobs(present);
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

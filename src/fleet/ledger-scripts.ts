/**
 * The Redis schema of the fleet's ledger (shared-lru.ts): its keys, and the
 * Lua scripts that keep them consistent, each run atomically by Redis. Kept
 * apart from the class that calls them so each file has one job: this one
 * says what Redis holds and how it changes; shared-lru.ts says when a node
 * records, registers, claims and restores. Tested through shared-lru.ts's
 * users in tests/fleet/fleet-eviction.test.ts.
 */

export const LRU = "docxy:lru";
export const SIZE = "docxy:size";
export const BYTES = "docxy:bytes";
export const READING = "docxy:reading:";
export const EVICTING = "docxy:evicting:";
export const FILL = "docxy:fill:"; // the fill lease (lease.ts)
/** Longer than any DELETE of one object: a reader registering within it is turned away. */
export const EVICTING_MS = 300_000;

/**
 * ARGV: digest/size/time triples; an empty size is a hit, which only moves a digest the ledger
 * knows. GT: a batch that arrives late never moves a blob back behind a later use.
 */
export const RECORD = `
for i = 1, #ARGV, 3 do
  local d, s, t = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if s == '' then redis.call('zadd', KEYS[1], 'XX', 'GT', t, d)
  else
    if redis.call('hsetnx', KEYS[2], d, s) == 1 then redis.call('incrby', KEYS[3], s) end
    redis.call('zadd', KEYS[1], 'GT', t, d)
  end
end
return 1`;

/** Adopted from the bucket's listing: only what the ledger lacks, used "now" (its real last use is unknown). */
export const ADOPT = `
for i = 2, #ARGV, 2 do
  if redis.call('hsetnx', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('incrby', KEYS[3], ARGV[i + 1])
    redis.call('zadd', KEYS[1], 'NX', ARGV[1], ARGV[i])
  end
end
return 1`;

/** KEYS: reading, evicting. 0: the blob is being evicted. All nodes share one TTL, so the last refresh sets the key's expiry. */
export const REGISTER = `
if redis.call('exists', KEYS[2]) == 1 then return 0 end
redis.call('zadd', KEYS[1], ARGV[2] + ARGV[3], ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[3])
return 1`;

/** Refreshes this node's registration on every key given. */
export const REFRESH = `
for i = 1, #KEYS do
  redis.call('zadd', KEYS[i], ARGV[2] + ARGV[3], ARGV[1])
  redis.call('pexpire', KEYS[i], ARGV[3])
end
return 1`;

/**
 * KEYS: lru, size, bytes, reading, evicting, fill; ARGV: digest, now, evicting ms, last use seen.
 * The blob's size when it left the ledger; -1 read somewhere, -2 gone, -3 used since listed.
 * The fill lease does not stop it: a committed fill keeps its lease for a minute only to point
 * other nodes at the owner, which would now find nothing to serve, so the lease goes with the
 * blob and the next request fills it again (a fill in progress registers its followers as
 * readers; one whose upstream answer is still on its way may lose its lease: at worst a second
 * download, never a wrong byte).
 */
export const CLAIM = `
redis.call('zremrangebyscore', KEYS[4], '-inf', ARGV[2])
if redis.call('zcard', KEYS[4]) > 0 then return -1 end
local score = redis.call('zscore', KEYS[1], ARGV[1])
if not score then return -2 end
if tonumber(score) > tonumber(ARGV[4]) then return -3 end
redis.call('set', KEYS[5], '1', 'PX', ARGV[3])
redis.call('del', KEYS[6])
redis.call('zrem', KEYS[1], ARGV[1])
local size = redis.call('hget', KEYS[2], ARGV[1]) or '0'
redis.call('hdel', KEYS[2], ARGV[1])
redis.call('decrby', KEYS[3], size)
return tonumber(size)`;

/**
 * An admin's purge (FleetEvictor.purge): CLAIM without the eviction order's checks, and for a blob
 * the ledger may not know (a Redis that lost it, a record not yet flushed). KEYS as CLAIM; ARGV:
 * digest, now, evicting ms. -1 read somewhere, -3 another claim deletes it now; otherwise the
 * object may be deleted: the size the ledger counted, -2 when it counted none.
 */
export const PURGE = `
redis.call('zremrangebyscore', KEYS[4], '-inf', ARGV[2])
if redis.call('zcard', KEYS[4]) > 0 then return -1 end
if redis.call('exists', KEYS[5]) == 1 then return -3 end
redis.call('set', KEYS[5], '1', 'PX', ARGV[3])
redis.call('del', KEYS[6])
redis.call('zrem', KEYS[1], ARGV[1])
local size = redis.call('hget', KEYS[2], ARGV[1])
if not size then return -2 end
redis.call('hdel', KEYS[2], ARGV[1])
redis.call('decrby', KEYS[3], size)
return tonumber(size)`;

/** Puts back a claimed blob whose DELETE failed: the next run retries it. */
export const RESTORE = `
if redis.call('hsetnx', KEYS[2], ARGV[1], ARGV[2]) == 1 then redis.call('incrby', KEYS[3], ARGV[2]) end
redis.call('zadd', KEYS[1], 'NX', ARGV[3], ARGV[1])
redis.call('del', KEYS[4])
return 1`;

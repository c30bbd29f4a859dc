/**
 * This node's membership of a fleet, from `[fleet]`: the shared Redis, the
 * fill leases naming this node by its advertise_url, and the key signing
 * node-to-node requests. Undefined without `redis_url`: a single node, which
 * needs none of it. Redis is not required at start unless `[fleet]
 * on_unreachable = "exit"` (main.ts asks fleet/reachability.ts first): a
 * node that cannot reach it coordinates alone and keeps trying (fleet/redis.ts).
 */
import { readFileSync } from "node:fs";
import type { Config } from "../config/schema";
import type { Logger } from "../observability/logger";
import { FillLeases } from "./lease";
import { FleetRedis, type RedisState } from "./redis";
import { FleetSharedKnowledge } from "./shared-knowledge";
import { FleetSigner } from "./signing";
import { FleetUpstreamTokens } from "./upstream-tokens";

export interface Fleet {
  leases: FillLeases;
  signer: FleetSigner;
  /** The one Redis client of this node (per-call timeouts, fallback): shared by everything kept in Redis. */
  redis: FleetRedis;
  /** docxy's own upstream tokens, shared encrypted under the fleet secret. */
  upstreamTokens: FleetUpstreamTokens;
  /** Tag answers, public repositories, links and access proofs the nodes tell each other. */
  knowledge: FleetSharedKnowledge;
  /** shared while Redis answers; local while this node coordinates alone. */
  state(): RedisState;
  close(): void;
}

export function openFleet({ fleet: config, cache }: Config, log: Logger): Fleet | undefined {
  if (!config.redis_url) return undefined;
  if (cache.storage !== "s3") {
    // Still one upstream download per blob for the fleet, but each node stores its own copy.
    log.warn('fleet: cache.storage is not "s3": every node keeps its own copy of what it serves');
  }
  const secret = config.secret || readFileSync(config.secret_file, "utf8").split("\n")[0]!.trim();
  const redis = new FleetRedis({ url: config.redis_url, log });
  log.info("fleet: coordinating fills through Redis", { advertise_url: config.advertise_url });
  void redis.send("PING", []); // turns the node local at once when Redis cannot be reached, so /health says so from the start
  return {
    leases: new FillLeases(redis, config.advertise_url),
    signer: new FleetSigner(secret),
    redis,
    upstreamTokens: new FleetUpstreamTokens(redis, secret),
    knowledge: new FleetSharedKnowledge(redis, secret),
    state: () => redis.state,
    close: () => redis.close(),
  };
}

/**
 * `src/fleet/` holds what nodes of a fleet (issue 16) need of each other and
 * of their shared Redis: this client, the fill lease (lease.ts), the signing
 * of node-to-node requests (signing.ts) and the follower's view of a fill
 * running on another node (peer-fill.ts).
 *
 * The fleet's Redis, as the coordination uses it: every call either answers
 * within CALL_TIMEOUT_MS or counts as Redis being unavailable. Bun's client
 * leaves commands queued on a connection that died hanging forever
 * (research/fleet.md §3), so a timeout per call is the only way a node never
 * waits on Redis. After a failure the client is dropped (a restarted Redis
 * gets a fresh connection, whatever state the old one was in) and Redis is
 * not asked again for RETRY_MS: meanwhile callers fall back to coordinating
 * in-process. State changes are logged once per transition; the Redis URL
 * (which may hold a password) never is.
 */
import { RedisClient } from "bun";
import type { Logger } from "../observability/logger";

const CALL_TIMEOUT_MS = 500;
const RETRY_MS = 2_000;

export type RedisState = "shared" | "local";

export interface FleetRedisOptions {
  url: string;
  log: Pick<Logger, "warn" | "info">;
  /** Overrides for tests. */
  callTimeoutMs?: number;
  retryMs?: number;
}

export class FleetRedis {
  private client: RedisClient | undefined;
  private retryAt = 0;
  private current: RedisState = "shared";
  private closed = false;
  private readonly timeoutMs: number;
  private readonly retryMs: number;

  constructor(private readonly options: FleetRedisOptions) {
    this.timeoutMs = options.callTimeoutMs ?? CALL_TIMEOUT_MS;
    this.retryMs = options.retryMs ?? RETRY_MS;
  }

  /** shared: the last call answered; local: Redis failed and nodes coordinate in-process for now. */
  get state(): RedisState {
    return this.current;
  }

  /**
   * Runs one Redis command; `{ value }` when Redis answered in time,
   * undefined when it is unavailable (down, slow, restarting, or backed off
   * after such a failure).
   */
  async send(command: string, args: string[]): Promise<{ value: unknown } | undefined> {
    if (this.closed || Date.now() < this.retryAt) return undefined;
    let client: RedisClient | undefined;
    let timer: Timer | undefined;
    const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), this.timeoutMs)));
    try {
      client = this.client ??= this.connect();
      const value = await Promise.race([client.send(command, args), timeout]);
      if (value === "timeout") throw new Error(`no answer within ${this.timeoutMs} ms`);
      this.transition("shared");
      return { value };
    } catch (error) {
      this.fail(client, error as Error);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = undefined;
  }

  private connect(): RedisClient {
    // No reconnecting inside the client: a failed one is replaced by a fresh one after RETRY_MS.
    return new RedisClient(this.options.url, { connectionTimeout: this.timeoutMs, autoReconnect: false, maxRetries: 0, enableOfflineQueue: true });
  }

  private fail(client: RedisClient | undefined, error: Error): void {
    if (client && this.client === client) {
      this.client = undefined;
      try {
        client.close();
      } catch {
        // already closed
      }
    }
    this.retryAt = Date.now() + this.retryMs;
    this.transition("local", error.message);
  }

  private transition(state: RedisState, reason?: string): void {
    if (state === this.current) return;
    this.current = state;
    if (state === "local") this.options.log.warn("fleet: Redis unavailable, this node coordinates fills, counts limits and keeps tokens alone", { reason: reason ?? "" });
    else this.options.log.info("fleet: Redis reachable again, sharing fills, limits and tokens with the fleet");
  }
}

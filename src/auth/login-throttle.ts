/**
 * How many wrong passwords docxy takes before it stops checking: failed
 * logins are counted per client address (IPv6 per /64, as the request limit
 * does) and per user name, in a fixed one-minute window of a RateLimitStore
 * (so a fleet can share the counts). Past either limit the token endpoint
 * answers 429 TOOMANYREQUESTS with Retry-After *before* bcrypt runs, so a
 * throttled guess costs docxy nothing and tells the guesser nothing.
 *
 * The two limits cover the two attacks: many names from one address
 * (spraying), one name from many addresses (a botnet on one account). The
 * price is paid by legitimate users sharing the guesser's address (a NAT)
 * or name: they are refused too until the window ends, at most a minute
 * after the guessing stops. Credentials that verified in the last minute
 * (ProxyUsers.recentlyVerified: Docker sends Basic on every token request)
 * pass anyway, so a user in the middle of a pull is not cut off; only a
 * fresh login waits. Successful logins are never counted.
 */
import { createHash } from "node:crypto";
import { RegistryError } from "../oci/errors";
import { limitKey, type RateLimitStore } from "../policy/rate-limiter";

export interface LoginThrottleOptions {
  store: RateLimitStore;
  /** Failed logins allowed per client address and minute; 0 = unlimited. */
  perAddress: number;
  /** Failed logins allowed per user name and minute; 0 = unlimited. */
  perName: number;
  now?: () => number;
}

const WINDOW_MS = 60_000;

export class LoginThrottle {
  private readonly now: () => number;
  /** Checks running now, per key: they count as failures until they are known not to be. */
  private readonly pending = new Map<string, number>();

  constructor(private readonly options: LoginThrottleOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Runs `verify` (the password check) unless `address` or `name` has used up
   * its failures, in which case it throws TOOMANYREQUESTS without running it;
   * a false result is counted as a failure of both. Checks still in flight
   * count against the limit too: otherwise a guesser sending a hundred at
   * once would get a hundred guesses in before the first failure is counted.
   */
  async attempt(address: string, name: string, verify: () => Promise<boolean>): Promise<boolean> {
    const limits = this.limits(address, name);
    const now = this.now();
    const windows = await Promise.all(limits.map(([key]) => this.options.store.peek(key, now)));
    // From here to the pending counts going up, nothing awaits: concurrent attempts see each other.
    for (const [i, [key, limit]] of limits.entries()) {
      const window = windows[i];
      if ((window?.count ?? 0) + (this.pending.get(key) ?? 0) >= limit) {
        // Only checks in flight: they end within a bcrypt run.
        const retryAfter = window ? Math.max(1, Math.ceil((window.resetAt - now) / 1000)) : 1;
        throw new RegistryError("TOOMANYREQUESTS", `too many failed logins, retry in ${retryAfter}s`, {
          detail: { retryAfterSeconds: retryAfter },
          headers: { "retry-after": String(retryAfter) },
        });
      }
    }
    for (const [key] of limits) this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    try {
      const ok = await verify();
      if (!ok) for (const [key] of limits) await this.options.store.hit(key, WINDOW_MS, this.now());
      return ok;
    } finally {
      for (const [key] of limits) {
        const left = (this.pending.get(key) ?? 1) - 1;
        if (left > 0) this.pending.set(key, left);
        else this.pending.delete(key);
      }
    }
  }

  private limits(address: string, name: string): [string, number][] {
    const { perAddress, perName } = this.options;
    const limits: [string, number][] = [];
    if (perAddress > 0) limits.push([`login-address:${limitKey(address)}`, perAddress]);
    // Hashed: a name that failed may be a password typed into the wrong field, and a fleet keeps these keys in Redis.
    if (perName > 0) limits.push([`login-name:${createHash("sha256").update(name).digest("hex")}`, perName]);
    return limits;
  }
}

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

  constructor(private readonly options: LoginThrottleOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Throws TOOMANYREQUESTS when `address` or `name` has used up its failures; counts nothing. */
  async check(address: string, name: string): Promise<void> {
    const now = this.now();
    for (const [key, limit] of this.limits(address, name)) {
      const window = await this.options.store.peek(key, now);
      if (window && window.count >= limit) {
        const retryAfter = Math.max(1, Math.ceil((window.resetAt - now) / 1000));
        throw new RegistryError("TOOMANYREQUESTS", `too many failed logins, retry in ${retryAfter}s`, {
          detail: { retryAfterSeconds: retryAfter },
          headers: { "retry-after": String(retryAfter) },
        });
      }
    }
  }

  /** Counts one failed login against `address` and `name`. */
  async failed(address: string, name: string): Promise<void> {
    const now = this.now();
    for (const [key] of this.limits(address, name)) await this.options.store.hit(key, WINDOW_MS, now);
  }

  private limits(address: string, name: string): [string, number][] {
    const { perAddress, perName } = this.options;
    const limits: [string, number][] = [];
    if (perAddress > 0) limits.push([`login-address:${limitKey(address)}`, perAddress]);
    if (perName > 0) limits.push([`login-name:${name}`, perName]);
    return limits;
  }
}

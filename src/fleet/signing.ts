/**
 * Node-to-node requests carry `X-Docxy-Fleet: <expiry ms>.<nonce>.<hmac>`,
 * an HMAC-SHA256 under the fleet's shared secret over the method, the path,
 * the expiry and the nonce. Only a node knowing the secret can make one, it
 * is good for one request to one path within SIGNED_FOR_MS, and a nonce is
 * accepted once (a signature copied off the wire cannot be replayed). The
 * comparison is constant-time. Clients never hold the secret, so nothing a
 * client sends, registry token included, passes.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const FLEET_SIGNATURE_HEADER = "x-docxy-fleet";
const SIGNED_FOR_MS = 30_000;

export class FleetSigner {
  /** Nonces seen, until their signature expires. */
  private readonly seen = new Map<string, number>();

  constructor(private readonly secret: string) {}

  sign(method: string, path: string, now = Date.now()): string {
    const expiry = String(now + SIGNED_FOR_MS);
    const nonce = randomBytes(16).toString("hex");
    return `${expiry}.${nonce}.${this.mac(method, path, expiry, nonce)}`;
  }

  /** Whether `header` signs this method and path, has not expired, and was not used before. */
  verify(method: string, path: string, header: string | null, now = Date.now()): boolean {
    const parts = header?.split(".");
    if (parts?.length !== 3) return false;
    const [expiry, nonce, mac] = parts as [string, string, string];
    const expires = Number(expiry);
    if (!/^\d+$/.test(expiry) || expires < now || expires > now + SIGNED_FOR_MS) return false;
    const expected = Buffer.from(this.mac(method, path, expiry, nonce), "hex");
    const given = Buffer.from(mac, "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    this.forgetExpired(now);
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, expires);
    return true;
  }

  private mac(method: string, path: string, expiry: string, nonce: string): string {
    return createHmac("sha256", this.secret).update(`${method}\n${path}\n${expiry}\n${nonce}`).digest("hex");
  }

  private forgetExpired(now: number): void {
    for (const [nonce, expires] of this.seen) if (expires < now) this.seen.delete(nonce);
  }
}

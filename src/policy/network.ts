/**
 * Who may connect: allow and deny lists of networks, and the client address
 * behind trusted reverse proxies.
 *
 * `X-Forwarded-For` is anyone's to write, so it counts only when the socket
 * peer is a proxy the operator listed; its entries are then read from the
 * right (each proxy appends the peer it saw), skipping trusted proxies, and
 * the first untrusted one is the client. Reading from the left would let a
 * client name itself whatever address an allow-list wants.
 */
import { RegistryError } from "../oci/errors";
import { AddressSet, normalizeAddress } from "./address";

export interface NetworkRules {
  /** Networks that may connect; empty lets everyone. */
  allow: string[];
  /** Networks refused even when an allow entry matches. */
  deny: string[];
  /** Reverse proxies whose X-Forwarded-For is believed. */
  trustedProxies: string[];
}

export class NetworkPolicy {
  private readonly allow: AddressSet;
  private readonly deny: AddressSet;
  private readonly trusted: AddressSet;

  /** Throws an Error naming the offending entry when a list holds something that is not a network. */
  constructor(rules: NetworkRules) {
    this.allow = new AddressSet(rules.allow, "allow");
    this.deny = new AddressSet(rules.deny, "deny");
    this.trusted = new AddressSet(rules.trustedProxies, "trusted proxies");
  }

  /**
   * The client's address, normalized (mapped IPv6 as IPv4): the socket peer,
   * or what a trusted peer's X-Forwarded-For says (several headers joined by
   * commas, as Headers.get does). A malformed entry met on the walk means the
   * chain cannot be trusted past it, so the socket peer is the answer. When
   * every entry is a trusted proxy, the leftmost is the client. A socket
   * address that is not an IP (unknown: "") comes back unchanged.
   */
  clientAddress(socketAddress: string, xForwardedFor: string | null): string {
    const peer = normalizeAddress(socketAddress);
    if (peer === null) return socketAddress;
    if (xForwardedFor === null || !this.trusted.has(peer)) return peer;
    const hops = xForwardedFor.split(",").map((entry) => normalizeAddress(entry.trim()));
    let i = hops.length - 1;
    while (i > 0 && hops[i] != null && this.trusted.has(hops[i]!)) i--;
    return hops[i] ?? peer;
  }

  /**
   * Throws DENIED unless the address may connect. With no rules at all every
   * request passes; once there are rules, an address that is not an IP
   * (the server could not tell the peer) is refused, since no rule can vouch for it.
   */
  check(address: string): void {
    if (this.allow.size === 0 && this.deny.size === 0) return;
    const normalized = normalizeAddress(address);
    if (normalized === null) throw denied(address, "the client address is unknown");
    if (this.deny.has(normalized)) throw denied(normalized, `${normalized} is in the denied networks`);
    if (this.allow.size > 0 && !this.allow.has(normalized)) throw denied(normalized, `${normalized} is not in the allowed networks`);
  }
}

function denied(address: string, why: string): RegistryError {
  return new RegistryError("DENIED", `access denied: ${why}`, { detail: { address } });
}

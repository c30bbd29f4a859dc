/**
 * IP addresses as the policies compare them. A dual-stack listener reports
 * IPv4 clients as IPv4-mapped IPv6 (`::ffff:10.1.2.3`); every policy treats
 * those as the IPv4 address they carry, so one rule, one rate-limit key and
 * one log line cover a client whichever socket it came in on.
 *
 * Matching is `node:net`'s BlockList (Bun implements it). Only the IPv6
 * parsing it does not expose is written here: the groups of an address, for
 * the mapped form in its hexadecimal spelling (`::ffff:a01:203`) and for
 * /64 rate-limit keys.
 */
import { BlockList, isIP } from "node:net";

/**
 * The address in comparable form: IPv4 dotted, IPv4-mapped IPv6 as its IPv4
 * address, other IPv6 lowercased; null when the text is not an IP address.
 * A zone (`fe80::1%eth0`) is dropped: it names one of our own interfaces,
 * which no rule can, and isIP refuses it.
 */
export function normalizeAddress(text: string): string | null {
  const address = text.includes(":") ? text.replace(/%[^%]*$/, "") : text;
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6) return null;
  return mappedIPv4(ipv6Groups(address)) ?? address.toLowerCase();
}

/** The eight 16-bit groups of an address isIP accepts as IPv6. */
export function ipv6Groups(address: string): number[] {
  const groups = (part: string): number[] =>
    part === "" ? [] : part.split(":").flatMap((group) => (group.includes(".") ? ipv4Groups(group) : [parseInt(group, 16)]));
  const gap = address.indexOf("::");
  if (gap < 0) return groups(address);
  const head = groups(address.slice(0, gap));
  const tail = groups(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

function ipv4Groups(dotted: string): number[] {
  const [a, b, c, d] = dotted.split(".").map(Number) as [number, number, number, number];
  return [(a << 8) | b, (c << 8) | d];
}

/** The IPv4 address in `::ffff:0:0/96`, or undefined outside it. */
function mappedIPv4(groups: number[]): string | undefined {
  if (!groups.slice(0, 5).every((group) => group === 0) || groups[5] !== 0xffff) return undefined;
  const [high, low] = [groups[6]!, groups[7]!];
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * A set of networks, from CIDRs (`10.0.0.0/8`, `2001:db8::/32`) and single
 * addresses. Rules are kept per family and an address is checked against its
 * own family's only: BlockList would also match IPv4 addresses against IPv6
 * rules through their mapped form, making `::/0` match every IPv4 client.
 * Here `::/0` is every IPv6 address, as in nginx and ip6tables, and a rule in
 * the mapped range (`::ffff:10.0.0.0/104`) is the IPv4 rule it spells.
 * Host bits under the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`), as
 * Go's net.ParseCIDR does.
 */
export class AddressSet {
  readonly size: number;
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();

  /** Throws a readable Error naming the entry and `what` (the setting) on anything that is not a network. */
  constructor(entries: readonly string[], what: string) {
    this.size = entries.length;
    for (const entry of entries) this.add(entry, what);
  }

  /** `address` must be normalized (normalizeAddress). */
  has(address: string): boolean {
    return isIP(address) === 4 ? this.v4.check(address, "ipv4") : this.v6.check(address, "ipv6");
  }

  private add(entry: string, what: string): void {
    const invalid = (why: string) => new Error(`invalid network ${JSON.stringify(entry)} in ${what}: ${why}`);
    const [address = "", prefixText, ...extra] = entry.trim().split("/");
    const family = isIP(address);
    if (family === 0 || extra.length > 0) throw invalid("expected an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32");
    const bits = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= bits)) throw invalid(`the prefix length must be 0 to ${bits}`);
    const mapped = family === 6 && prefix >= 96 ? mappedIPv4(ipv6Groups(address)) : undefined;
    if (mapped !== undefined) this.v4.addSubnet(mapped, prefix - 96, "ipv4");
    else if (family === 4) this.v4.addSubnet(address, prefix, "ipv4");
    else this.v6.addSubnet(address, prefix, "ipv6");
  }
}

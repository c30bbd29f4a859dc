/**
 * Where an upstream may send docxy. A redirect (and a token realm an upstream
 * names in its own challenge) is a URL chosen by the upstream, not by the
 * operator; fetching it unchecked lets a hostile or tampered upstream make
 * docxy read `file:///etc/docxy/docxy.toml` (Bun's fetch reads file: URLs),
 * or reach cloud metadata or an admin port on the host, and relay the answer.
 *
 * The rule:
 * - only `http:` and `https:`;
 * - public addresses always; a redirect to the very host (and port) the
 *   request started at always (the operator named it);
 * - loopback and private addresses only when the request started at an
 *   address of that same kind (a LAN registry whose blob store is on the LAN,
 *   the tests' registry on 127.0.0.1 and its CDN on 127.0.0.1), or with the
 *   upstream's `allow_private_redirects`;
 * - link-local and cloud metadata addresses only with `allow_private_redirects`
 *   (no registry legitimately lives there, credentials do);
 * - "this network", multicast and reserved addresses never: no registry lives
 *   there, and 0.0.0.0 reaches the local host on Linux.
 *
 * Host names are resolved (every address, as fetch may use any) and each one
 * is judged. Residual risk, accepted: the name is resolved again when fetch
 * connects, so a name whose DNS answer changes between the two (DNS
 * rebinding, with a TTL of 0 and an attacker's own name server) can still
 * reach a refused address. Closing that means connecting to the checked
 * address ourselves, which Bun's fetch cannot do while keeping TLS name
 * checks for the original host; the rebinding attacker also needs the
 * upstream to redirect to their name, and an operator who must rule this out
 * filters docxy's egress at the network, where it belongs.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { RegistryError } from "../oci/errors";
import { AddressSet, ipv6Groups, normalizeAddress } from "../policy/address";

export type AddressKind = "public" | "loopback" | "private" | "link-local" | "metadata" | "unusable";

/** First match wins: the metadata addresses lie inside the link-local, ULA and CGNAT ranges. */
const KINDS: readonly (readonly [AddressKind, AddressSet])[] = [
  // AWS, GCP, Azure, OpenStack (169.254.169.254), AWS over IPv6 (fd00:ec2::254), Alibaba Cloud (100.100.100.200).
  ["metadata", new AddressSet(["169.254.169.254", "fd00:ec2::254", "100.100.100.200"], "metadata addresses")],
  ["loopback", new AddressSet(["127.0.0.0/8", "::1"], "loopback addresses")],
  ["link-local", new AddressSet(["169.254.0.0/16", "fe80::/10"], "link-local addresses")],
  // RFC 1918, CGNAT (RFC 6598), IPv6 ULA (RFC 4193), NAT64 local-use (RFC 8215).
  ["private", new AddressSet(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "64:ff9b:1::/48"], "private addresses")],
  // "This network" (0.0.0.0/8), multicast, reserved and broadcast; IPv6 unspecified and the
  // deprecated IPv4-compatible ::/96 (after ::1 above), IPv6 multicast.
  ["unusable", new AddressSet(["0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "::/96", "ff00::/8"], "unusable addresses")],
];

/** Names of metadata services, refused before any lookup (they resolve to a metadata address where they exist at all). */
const METADATA_NAMES: ReadonlySet<string> = new Set(["metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"]);

/** The kind of an IP address (any spelling isIP accepts, IPv4-mapped and NAT64/6to4-embedded forms included). */
export function addressKind(text: string): AddressKind {
  const address = normalizeAddress(text);
  if (address === null) throw new Error(`not an IP address: ${text}`);
  const embedded = isIP(address) === 6 ? embeddedIPv4(ipv6Groups(address)) : undefined;
  if (embedded !== undefined) return addressKind(embedded);
  return KINDS.find(([, set]) => set.has(address))?.[0] ?? "public";
}

/**
 * The IPv4 address inside a NAT64 (64:ff9b::/96, RFC 6052) or 6to4
 * (2002::/16, RFC 3056) address: a gateway turns these into IPv4 traffic to
 * that address, so they are what it is.
 */
function embeddedIPv4(groups: number[]): string | undefined {
  const dotted = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0)) return dotted(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return dotted(groups[1]!, groups[2]!);
  return undefined;
}

export interface RedirectScope {
  /** Where the request started: the configured upstream, or a configured token realm. */
  trusted: URL;
  /** The upstream's `allow_private_redirects`. */
  allowPrivate: boolean;
  /**
   * The hop goes through an outbound proxy, which resolves the name itself: behind a corporate
   * proxy this host often cannot resolve public names (Docker Hub's CDN) at all.
   */
  proxied?: boolean;
}

/**
 * Resolves unless docxy may fetch `target` for a request that started at
 * `scope.trusted`; otherwise a 502 UNAVAILABLE naming the target's scheme and
 * host only (a path or query may carry a signature).
 */
export async function checkRedirect(target: URL, scope: RedirectScope): Promise<void> {
  const where = target.protocol === "http:" || target.protocol === "https:" ? `${target.protocol}//${target.host}` : target.protocol;
  const refuse = (why: string) => new RegistryError("UNAVAILABLE", `upstream redirect to ${where} refused: ${why}`, { status: 502 });
  if (target.protocol !== "http:" && target.protocol !== "https:") throw refuse("only http and https are followed");
  if (target.host === scope.trusted.host) return;
  const name = hostName(target);
  if (METADATA_NAMES.has(name)) throw refuse("a cloud metadata service");

  const addresses = await resolve(name);
  // A name only the proxy can resolve is judged by the proxy's network: address literals,
  // metadata names and every name that does resolve here are still checked.
  if (typeof addresses === "string" && scope.proxied) return;
  if (typeof addresses === "string") throw refuse(`its host does not resolve (${addresses})`);
  let trustedKinds: Set<AddressKind> | undefined;
  for (const address of addresses) {
    const kind = addressKind(address);
    if (kind === "public") continue;
    if (kind === "unusable") throw refuse(`${address} is not a destination`);
    if (scope.allowPrivate) continue;
    if (kind === "loopback" || kind === "private") {
      // Resolved only when needed: a redirect to a public CDN (Docker Hub's) costs one lookup, not two.
      trustedKinds ??= await kindsOf(hostName(scope.trusted));
      if (trustedKinds.has(kind)) continue;
    }
    throw refuse(`${address} is a ${kind} address (allow_private_redirects is off for this upstream)`);
  }
}

/** The kinds of a trusted host's addresses (none when it does not resolve: then only public targets pass). */
async function kindsOf(name: string): Promise<Set<AddressKind>> {
  const addresses = await resolve(name);
  return new Set(typeof addresses === "string" ? [] : addresses.map(addressKind));
}

/** The URL's host name as DNS and isIP know it: IPv6 without brackets, no trailing dot. */
function hostName(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
}

/** Every address of `name` (itself, when it is an address), or why the lookup failed. */
async function resolve(name: string): Promise<string[] | string> {
  if (isIP(name) !== 0) return [name];
  try {
    return (await lookup(name, { all: true, verbatim: true })).map((entry) => entry.address);
  } catch (error) {
    return (error as { code?: string }).code ?? "lookup failed";
  }
}

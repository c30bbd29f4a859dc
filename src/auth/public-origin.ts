/**
 * The origin clients must use to reach this proxy, which becomes the token
 * realm in every challenge and the target of HTTP→HTTPS redirects.
 *
 * Wharf built it from the request's Host / X-Forwarded-Host until
 * CVE-2025-63761: an attacker-chosen Host pointed the realm, and with it the
 * user's Basic credentials, at the attacker. So:
 * - a configured `public_base_url` always wins;
 * - without one, the Host header is used only when it names this machine
 *   (localhost, its host name, one of its interface addresses, or a host
 *   listed in `[[registry.upstreams]] hosts`), so no request can make the
 *   realm point anywhere but here; any other Host falls back to this
 *   machine's first non-loopback address. X-Forwarded-* is never read.
 */
import { hostname, networkInterfaces } from "node:os";

/** What the server edge knows about the connection a request arrived on. */
export interface ConnectionFacts {
  host: string | null;
  secure: boolean;
  localPort: number;
}

const HOST_HEADER = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

export class PublicOrigin {
  private readonly selfNames: Set<string>;
  private readonly fallbackHost: string;

  constructor(extraHosts: string[] = [], interfaces = localAddresses()) {
    this.selfNames = new Set(["localhost", hostname().toLowerCase(), ...interfaces, ...extraHosts].map(bare));
    this.fallbackHost = interfaces.find((a) => !a.startsWith("127.") && a !== "::1" && !a.startsWith("fe80")) ?? "localhost";
  }

  /** `configured` is the public_base_url that applies (upstream's, registry's or server's). */
  resolve(configured: string | undefined, connection: ConnectionFacts): string {
    if (configured) return configured;
    const scheme = connection.secure ? "https" : "http";
    const host = connection.host?.trim() ?? "";
    // The grammar, then the URL parser (which also bounds the port): only a well-formed self-name is used.
    if (HOST_HEADER.test(host) && URL.canParse(`${scheme}://${host}`) && this.selfNames.has(bare(host))) {
      return `${scheme}://${host.toLowerCase()}`;
    }
    const name = this.fallbackHost.includes(":") ? `[${this.fallbackHost}]` : this.fallbackHost;
    const defaultPort = connection.secure ? 443 : 80;
    return `${scheme}://${name}${connection.localPort === defaultPort ? "" : `:${connection.localPort}`}`;
  }
}

/** Host without port or brackets, lowercase, no trailing dot. */
function bare(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]"));
  const colons = h.split(":").length - 1;
  return (colons === 1 ? h.slice(0, h.indexOf(":")) : h).replace(/\.$/, "");
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined)
    .map((i) => i.address.toLowerCase());
}

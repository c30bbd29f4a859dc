/**
 * Which proxy the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY,
 * lowercase first, as curl reads them) names for a URL. Bun's fetch applies
 * HTTP(S) proxies from the environment by itself, and docxy lets it; this
 * answer is for what Bun cannot do (SOCKS, bridged in client.ts) and for
 * naming the proxy when it fails. Loopback is not exempt unless NO_PROXY
 * lists it, as in Bun (research/bun-elysia.md §2).
 */
import { parseProxyUrl, type OutboundProxy } from "./proxy-url";

type Env = Record<string, string | undefined>;

/** The environment's proxy for `url`, or undefined when none applies. Throws for a URL parseProxyUrl refuses. */
export function envProxyFor(url: URL, env: Env): OutboundProxy | undefined {
  const raw = url.protocol === "https:" ? (read(env, "https_proxy") ?? read(env, "all_proxy")) : (read(env, "http_proxy") ?? read(env, "all_proxy"));
  if (raw === undefined || bypassed(url, read(env, "no_proxy") ?? "")) return undefined;
  return parseEnvProxy(raw);
}

/** One proxy variable that is set: its name as written, and the proxy or why it is refused. */
export interface EnvProxy {
  name: string;
  proxy?: OutboundProxy;
  problem?: string;
}

/** The environment's proxy variables that are set, parsed (for validation and check-config). */
export function envProxies(env: Env): EnvProxy[] {
  return ["https_proxy", "http_proxy", "all_proxy"].flatMap((name): EnvProxy[] => {
    const raw = read(env, name);
    if (raw === undefined) return [];
    const shown = name in env && env[name] ? name : name.toUpperCase();
    try {
      return [{ name: shown, proxy: parseEnvProxy(raw) }];
    } catch (error) {
      return [{ name: shown, problem: (error as Error).message }];
    }
  });
}

/** `proxy.corp:3128` is common in these variables and means http (curl's reading). */
function parseEnvProxy(raw: string): OutboundProxy {
  return parseProxyUrl(raw.includes("://") ? raw : `http://${raw}`);
}

function read(env: Env, lower: string): string | undefined {
  const value = env[lower] || env[lower.toUpperCase()];
  return value?.trim() ? value.trim() : undefined;
}

/**
 * Whether NO_PROXY exempts `url`. Bun's fetch applies NO_PROXY even to a `proxy` passed
 * explicitly (checked on Bun 1.4.5), so client.ts refuses such a hop rather than let it leave
 * around an upstream's own proxy.
 */
export function noProxyLists(url: URL, env: Env): boolean {
  return bypassed(url, read(env, "no_proxy") ?? "");
}

/** NO_PROXY: `*`, or names and domains (`.corp` or `corp` match sub-domains), optionally with a port. */
function bypassed(url: URL, noProxy: string): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return noProxy
    .split(/[\s,]+/)
    .filter(Boolean)
    .some((entry) => {
      if (entry === "*") return true;
      const [name, entryPort] = splitPort(entry.toLowerCase());
      if (entryPort !== undefined && entryPort !== port) return false;
      const domain = name.replace(/^\*?\./, "");
      return host === domain || host.endsWith(`.${domain}`);
    });
}

/** `host:port`, `[v6]:port`, or a bare name or address (a bare IPv6 address has no port). */
function splitPort(entry: string): [string, string | undefined] {
  const bracketed = /^\[(.+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return [bracketed[1]!, bracketed[2]];
  const colons = entry.split(":").length - 1;
  if (colons !== 1) return [entry, undefined];
  const [name, port] = entry.split(":") as [string, string];
  return [name, port];
}

/**
 * An outbound proxy named by an upstream's `proxy` key, and the one way its
 * URL is ever printed. Proxy URLs carry the corporate account in
 * `user:pass@`, so everything that reports a proxy (errors, logs, /health,
 * check-config, metrics) uses `display`, never the URL itself.
 */

/** The schemes docxy can speak to a proxy; `socks5` resolves names here, `socks5h` at the proxy. */
export const PROXY_SCHEMES = ["http", "https", "socks5", "socks5h"] as const;

export interface OutboundProxy {
  /** The URL as configured, credentials included: only for the connection itself. */
  url: string;
  /** `scheme://host:port`, without credentials: the only form ever printed. */
  display: string;
  /** SOCKS is bridged (socks-bridge.ts); http and https go to Bun's fetch as they are. */
  socks: boolean;
  /** socks5h: the proxy resolves upstream names (the only choice where this host's DNS cannot). */
  remoteDns: boolean;
  host: string;
  port: number;
  username?: string;
  password?: string;
}

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443, socks5: 1080, socks5h: 1080 };

/** Parses a proxy URL, or throws an Error whose message says what to write instead (without the credentials). */
export function parseProxyUrl(raw: string): OutboundProxy {
  const url = URL.parse(raw.trim());
  if (url === null || !url.hostname) {
    throw new Error(`must be a URL like http://user:pass@proxy.example.com:3128 or socks5://proxy.example.com:1080 (got ${quoted(raw)})`);
  }
  const scheme = url.protocol.slice(0, -1);
  if (!(PROXY_SCHEMES as readonly string[]).includes(scheme)) {
    throw new Error(`scheme ${JSON.stringify(scheme)} is not supported: use ${PROXY_SCHEMES.map((s) => `${s}://`).join(", ")} (got ${quoted(raw)})`);
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) {
    throw new Error(`must be the proxy's address only, with no path or query (got ${quoted(raw)})`);
  }
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[scheme]!;
  const socks = scheme.startsWith("socks");
  return {
    url: url.href.replace(/\/$/, ""),
    display: `${scheme}://${url.hostname}:${port}`,
    socks,
    remoteDns: scheme === "socks5h",
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}

/** A refused value as error messages quote it: credentials hidden even where it is no URL (`user:pass@host:port`). */
function quoted(raw: string): string {
  return JSON.stringify(redactUrls(raw).replace(/^[^/@]*@/, "***@"));
}

/**
 * `text` with the `user:pass@` (or `user@`) of every URL in it replaced by `***@`, for messages
 * that quote a URL or an error from a library that might: a proxy's account must not reach a
 * log line, an error body or the health page even when it is wrong.
 */
export function redactUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"']*@/gi, "$1***@");
}

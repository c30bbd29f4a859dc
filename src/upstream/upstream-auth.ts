/**
 * Pulling as docxy itself: the token dance (distribution token.md) done by
 * the proxy, with a configured account or anonymously, for clients that bring
 * no credentials of their own (and for every client when docxy has its own
 * users). Tokens are cached per (upstream, scope, account) until shortly
 * before they expire (Docker Hub's last 300 s), so a pull costs the token
 * service one request per repository, not one per layer. In a fleet the
 * tokens are shared too (SharedTokens): a token one node fetched serves the
 * others until it expires, so N nodes cost the token service (and an
 * account's quota of logins) what one does. Only docxy's own tokens go
 * there; a client's never passes through this class.
 *
 * Tested through the binary against the real test registry: tests/integration/upstream/upstream-auth.test.ts;
 * shared by a fleet: tests/fleet/upstream-tokens.test.ts, tests/integration/fleet/upstream-tokens.test.ts.
 */
import { RegistryError } from "../oci/errors";
import { pickAccount, type Account } from "./accounts";
import { readCapped, TOKEN_LIMIT } from "./body-limit";
import type { AuthDiscovery } from "./auth-discovery";
import { discard, type UpstreamClient } from "./client";
import type { Upstream } from "./table";

/** Refresh this long before expiry, so a token never dies between check and use. */
const MARGIN_MS = 15_000;
const MAX_CACHED = 10_000;

export interface ProxyAuthorization {
  /** The Authorization header to send upstream; undefined for an upstream without token auth. */
  header: string | undefined;
  account: Account | undefined;
}

export interface CachedToken {
  header: string;
  /** Epoch ms, MARGIN_MS before the token really expires. */
  expiresAt: number;
}

/**
 * Tokens kept where other nodes find them (the fleet's Redis). Never throws:
 * while the store is unavailable `get` finds nothing and the rest do nothing,
 * and each node fetches its own tokens.
 */
export interface SharedTokens {
  get(key: string): Promise<CachedToken | undefined>;
  set(key: string, token: CachedToken): Promise<void>;
  delete(key: string): Promise<void>;
}

export class UpstreamAuth {
  private readonly tokens = new Map<string, CachedToken>();

  constructor(
    private readonly client: UpstreamClient,
    private readonly discovery: AuthDiscovery,
    private readonly accounts: ReadonlyMap<string, readonly Account[]>,
    private readonly shared?: SharedTokens,
  ) {}

  hasAccounts(upstream: Upstream): boolean {
    return (this.accounts.get(upstream.name)?.length ?? 0) > 0;
  }

  /** The accounts of an upstream, for reporting (usernames and quota only). */
  accountsOf(upstream: Upstream): readonly Account[] {
    return this.accounts.get(upstream.name) ?? [];
  }

  async authorize(upstream: Upstream, repository: string, signal?: AbortSignal): Promise<ProxyAuthorization> {
    const account = pickAccount(this.accountsOf(upstream));
    const scope = `repository:${repository}:pull`;
    const key = `${upstream.name}\n${scope}\n${account?.username ?? ""}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return { header: cached.header, account };
    const shared = await this.shared?.get(key);
    if (shared && shared.expiresAt > Date.now()) {
      this.remember(key, shared.header, shared.expiresAt);
      return { header: shared.header, account };
    }

    let service;
    try {
      service = await this.discovery.tokenService(upstream, signal);
    } catch (error) {
      if (error instanceof RegistryError && error.ociCode === "UNSUPPORTED") {
        // No token auth upstream: an account is Basic auth, anonymous is nothing.
        return { header: account?.basic(), account };
      }
      throw error;
    }
    const url = new URL(service.realm);
    url.searchParams.append("service", service.service);
    url.searchParams.append("scope", scope);
    const headers = new Headers({ accept: "application/json" });
    if (account) headers.set("authorization", account.basic());
    const { response } = await this.client.send({
      method: "GET",
      url: url.href,
      headers,
      signal,
      trustedUrl: service.namedBy,
      allowPrivateRedirects: upstream.allowPrivateRedirects,
      proxy: upstream.proxy,
    });
    if (!response.ok) {
      await discard(response);
      const who = account ? `account ${account.username}` : "anonymous access";
      throw new RegistryError("DENIED", `the upstream ${upstream.name} refused docxy's ${who} (${response.status})`);
    }
    const body = parseToken(await readCapped(response, TOKEN_LIMIT, upstream.name)) ?? {};
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || token === "") throw new RegistryError("UNAVAILABLE", `the upstream ${upstream.name}'s token service sent no token`, { status: 502 });
    // Token spec: expires_in defaults to 60 s; the clock starts at issued_at when given.
    const issued = typeof body.issued_at === "string" ? Date.parse(body.issued_at) : Date.now();
    const lifetime = typeof body.expires_in === "number" ? body.expires_in : 60;
    const expiresAt = (Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now())) + Math.max(lifetime, 60) * 1000 - MARGIN_MS;
    const header = `Bearer ${token}`;
    this.remember(key, header, expiresAt);
    await this.shared?.set(key, { header, expiresAt });
    return { header, account };
  }

  /**
   * Forgets a token the upstream refused, here and in the fleet, so the next
   * request gets a fresh one (resolves once the fleet forgot it: a retry
   * must not find it there again). Other nodes that already hold it keep it
   * until the upstream refuses it to them.
   */
  async invalidate(upstream: Upstream, repository: string, account: Account | undefined): Promise<void> {
    const key = `${upstream.name}\nrepository:${repository}:pull\n${account?.username ?? ""}`;
    this.tokens.delete(key);
    await this.shared?.delete(key);
  }

  private remember(key: string, header: string, expiresAt: number): void {
    if (this.tokens.size >= MAX_CACHED) {
      const now = Date.now();
      for (const [k, v] of this.tokens) if (v.expiresAt <= now) this.tokens.delete(k);
      if (this.tokens.size >= MAX_CACHED) this.tokens.clear();
    }
    this.tokens.set(key, { header, expiresAt });
  }
}

interface TokenBody {
  token?: unknown;
  access_token?: unknown;
  expires_in?: unknown;
  issued_at?: unknown;
}

/** The token service's JSON, or undefined when it is not a JSON object (then it "sent no token"). */
function parseToken(bytes: Uint8Array): TokenBody | undefined {
  try {
    const body: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof body === "object" && body !== null ? body : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Who stands behind a client's token, so that a client that proved access to
 * a private repository can still be recognised while the upstream or its
 * token service is in trouble — and nobody else gets that repository.
 *
 * - While the token service works, docxy relays the token it issues for a
 *   client's credentials (Basic on GET, the password grant's form on POST)
 *   and remembers token → credentials. Credentials are kept only as an HMAC
 *   under a per-process key: neither a password nor an offline-crackable
 *   hash of one is held.
 * - When the access gate proves a token's access to a repository upstream,
 *   the proof is remembered for those credentials too, for PROOF_TTL_MS.
 * - While the token service is in trouble, the offline token a client gets
 *   for its credentials carries a random handle for them. The gate then
 *   finds the earlier proofs by that handle: the same credentials that read
 *   a repository before read it now; other credentials, a wrong password and
 *   anonymous clients do not.
 *
 * Everything is in memory and bounded; a restart forgets it, and then
 * private content waits for the upstream, as it did before.
 */
import { createHmac, randomBytes } from "node:crypto";
import { bearerToken } from "../oci/authorization";

/** The token handed out while the upstream's token service is in trouble; with `.handle` when it names credentials. */
export const OFFLINE_TOKEN = "docxy-offline";
/** How long a proof of access by some credentials is trusted while the upstream cannot be asked. */
const PROOF_TTL_MS = 24 * 60 * 60 * 1000;
/** How long docxy remembers whose a relayed token is, at most (tokens usually live minutes). */
const TOKEN_TTL_MS = 60 * 60 * 1000;
const MAX_ENTRIES = 10_000;

interface Entry {
  credentials: string;
  expires: number;
}

export class CredentialMemory {
  private readonly key = randomBytes(32);
  /** sha256 of a relayed token → its credentials. */
  private readonly tokens = new Map<string, Entry>();
  /** offline handle → credentials. */
  private readonly handles = new Map<string, Entry>();
  /** credentials + repository → when access was last proven. */
  private readonly proofs = new Map<string, number>();

  /** The credentials of a token request, as an opaque key, or undefined for an anonymous one. */
  credentialsOf(authorization: string | null, form?: URLSearchParams): string | undefined {
    let material: string | undefined;
    if (form?.get("grant_type") === "password") material = `${form.get("username") ?? ""}:${form.get("password") ?? ""}`;
    else if (form?.get("grant_type") === "refresh_token") material = `refresh:${form.get("refresh_token") ?? ""}`;
    else {
      const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? "")?.[1];
      if (basic) material = Buffer.from(basic, "base64").toString("utf8");
    }
    return material ? createHmac("sha256", this.key).update(material).digest("base64url") : undefined;
  }

  /** The upstream issued `token` for `credentials`. */
  issued(credentials: string, token: string, lifetimeSeconds: number): void {
    const ttl = Math.min(TOKEN_TTL_MS, Math.max(60, lifetimeSeconds) * 1000);
    remember(this.tokens, this.digest(token), { credentials, expires: Date.now() + ttl });
  }

  /** The offline token for a client presenting `credentials` (anonymous: the plain one). */
  offlineToken(credentials: string | undefined): string {
    if (!credentials) return OFFLINE_TOKEN;
    const handle = randomBytes(18).toString("base64url");
    remember(this.handles, handle, { credentials, expires: Date.now() + TOKEN_TTL_MS });
    return `${OFFLINE_TOKEN}.${handle}`;
  }

  /** Whether `authorization` carries one of docxy's offline tokens (worth nothing upstream). */
  isOffline(authorization: string | null): boolean {
    return bearerToken(authorization)?.split(".")[0] === OFFLINE_TOKEN;
  }

  /** The upstream confirmed that `authorization` may read `repository` (upstream name and repository). */
  proven(authorization: string | null, repository: string): void {
    const token = bearerToken(authorization);
    const owner = token === undefined ? undefined : live(this.tokens, this.digest(token));
    if (!owner) return;
    this.proofs.delete(`${owner} ${repository}`);
    this.proofs.set(`${owner} ${repository}`, Date.now());
    if (this.proofs.size > MAX_ENTRIES) this.proofs.delete(this.proofs.keys().next().value!);
  }

  /** Whether the credentials behind an offline token proved access to `repository` within PROOF_TTL_MS. */
  provenBefore(authorization: string | null, repository: string): boolean {
    const handle = bearerToken(authorization)?.split(".")[1];
    const owner = handle === undefined ? undefined : live(this.handles, handle);
    const at = owner === undefined ? undefined : this.proofs.get(`${owner} ${repository}`);
    return at !== undefined && Date.now() - at < PROOF_TTL_MS;
  }

  /**
   * Whether the credentials behind `authorization` — a token docxy relayed, or an offline one —
   * proved access to `repository` within PROOF_TTL_MS. Tokens expire within minutes; the
   * credentials behind them are what a later request can be recognised by.
   */
  provenAny(authorization: string | null, repository: string): boolean {
    if (this.provenBefore(authorization, repository)) return true;
    const token = bearerToken(authorization);
    const owner = token === undefined ? undefined : live(this.tokens, this.digest(token));
    const at = owner === undefined ? undefined : this.proofs.get(`${owner} ${repository}`);
    return at !== undefined && Date.now() - at < PROOF_TTL_MS;
  }

  private digest(token: string): string {
    return createHmac("sha256", this.key).update(token).digest("base64url");
  }
}

function remember(map: Map<string, Entry>, key: string, entry: Entry): void {
  map.delete(key);
  map.set(key, entry);
  if (map.size > MAX_ENTRIES) map.delete(map.keys().next().value!);
}

function live(map: Map<string, Entry>, key: string): string | undefined {
  const entry = map.get(key);
  if (entry && entry.expires > Date.now()) return entry.credentials;
  if (entry) map.delete(key);
  return undefined;
}

/**
 * docxy's own tokens, when proxy auth is on: compact JWTs (RFC 7519) signed
 * HS256 with one secret, in the claim shape of the Docker token spec
 * (distribution docs/spec/auth/jwt.md: `iss`, `sub`, `iat`, `nbf`, `exp`,
 * `jti`, `access`).
 *
 * Access tokens grant the intersection of what was asked and what docxy
 * allows, which is `pull` on repositories — granting less is not an error
 * (docs/spec/auth/token.md); the registry side refuses the rest later.
 * Repository names stay as the client wrote them, registry prefix included
 * (`ghcr.io/x/y`), because that is how the same client names them in the
 * `/v2/` paths it then requests.
 *
 * Refresh tokens are what `docker login` keeps as its identity token when
 * the login answer has `refresh_token`; Docker then POSTs
 * `grant_type=refresh_token` before each pull (protocol.md §2.4). They carry
 * the user's credential stamp, so a password change or a removed user
 * revokes them.
 *
 * The two kinds are signed with different keys derived from the secret, so
 * neither passes for the other (RFC 8725 §3.12, mutually exclusive
 * validation rules). Verification accepts only the exact header docxy
 * writes, which rules out `alg: none` and every other algorithm or header
 * trick (RFC 8725 §3.1) without parsing it.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface VerifiedToken {
  user: string;
  access: TokenAccess[];
}

/** The token endpoint's answer (docs/spec/auth/token.md), ready to serialise. */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

export interface ProxyTokensOptions {
  /** At least 32 bytes; see ProxyTokens.secretFrom. */
  secret: Uint8Array;
  /** Access token lifetime: at least 60, below which clients count 60 anyway (protocol.md §2.2, §2.4) and would use expired tokens. */
  ttlSeconds: number;
  /** Milliseconds since the epoch, as Date.now. */
  now?: () => number;
}

const ISSUER = "docxy";
const HEADER = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
/** How long `docker login` stays good; after that Docker's pulls fail until the user logs in again. */
const REFRESH_TTL_SECONDS = 30 * 24 * 60 * 60;
/** Clock skew tolerated on `exp` and `nbf`; distribution 2.8 allows 60 s (protocol.md §6.2). */
const LEEWAY_SECONDS = 30;
/** Longest repository name (distribution reference.NameTotalLengthMax, registry prefix included). */
const MAX_NAME = 255;
/** Scopes granted per token: far more than any client asks for at once, and the bound that keeps a token under MAX_TOKEN. */
const MAX_GRANTS = 16;
/** Longer input is not a docxy token (issue stays below it for any sensible user name), and the limit keeps tokens within common 8 KiB request-header limits. */
const MAX_TOKEN = 8192;
/** The characters of a repository name, with a `host:port` prefix (distribution reference/regexp.go). */
const NAME = /^[A-Za-z0-9._:/-]+$/;
const SEGMENT = /^[A-Za-z0-9_-]+$/;

export class ProxyTokens {
  private readonly accessKey: Buffer;
  private readonly refreshKey: Buffer;
  private readonly ttlSeconds: number;
  private readonly now: () => number;

  constructor(options: ProxyTokensOptions) {
    if (options.secret.byteLength < 32) throw new RangeError("the token secret must be at least 32 bytes");
    if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds < 60) {
      throw new RangeError("the token lifetime must be a whole number of seconds, at least 60");
    }
    this.accessKey = createHmac("sha256", options.secret).update("docxy access token").digest();
    this.refreshKey = createHmac("sha256", options.secret).update("docxy refresh token").digest();
    this.ttlSeconds = options.ttlSeconds;
    this.now = options.now ?? Date.now;
  }

  /**
   * The secret from configuration (a string of at least 32 characters), or,
   * when none is configured, 32 random bytes: tokens then die with the
   * process, so clients fetch new ones after a restart (they do on the 401),
   * `docker login` must be repeated, and several nodes behind one name would
   * not accept each other's tokens.
   */
  static secretFrom(value: string | undefined): Uint8Array {
    if (value === undefined) return randomBytes(32);
    if (value.length < 32) throw new RangeError("the token secret must be at least 32 characters");
    return new TextEncoder().encode(value);
  }

  /** `scopes`: as the client sent them; an entry may hold several, separated by spaces (the OAuth2 form's one field). */
  issue(user: string, scopes: string[]): TokenResponse {
    const iat = Math.floor(this.now() / 1000);
    const token = this.sign(this.accessKey, {
      iss: ISSUER,
      sub: user,
      iat,
      nbf: iat,
      exp: iat + this.ttlSeconds,
      jti: randomBytes(16).toString("base64url"),
      access: grants(scopes),
    });
    return { token, access_token: token, expires_in: this.ttlSeconds, issued_at: new Date(iat * 1000).toISOString() };
  }

  verify(token: string): VerifiedToken | undefined {
    const claims = this.claims(this.accessKey, token);
    if (!claims || !isAccessList(claims.access)) return undefined;
    return { user: claims.sub, access: claims.access };
  }

  /** Pull on `repository`, named as in the client's `/v2/` path (registry prefix included, no `library/` added). */
  allows(verified: VerifiedToken, repository: string): boolean {
    return verified.access.some((a) => a.type === "repository" && a.name === repository && a.actions.includes("pull"));
  }

  /** `stamp`: ProxyUsers.credentialStamp(user) at login. */
  issueRefresh(user: string, stamp: string): string {
    const iat = Math.floor(this.now() / 1000);
    return this.sign(this.refreshKey, {
      iss: ISSUER,
      sub: user,
      iat,
      nbf: iat,
      exp: iat + REFRESH_TTL_SECONDS,
      jti: randomBytes(16).toString("base64url"),
      stamp,
    });
  }

  /**
   * The user of a valid refresh token whose credentials are unchanged:
   * `currentStamp` is ProxyUsers.credentialStamp, undefined for a user that
   * no longer exists.
   */
  verifyRefresh(token: string, currentStamp: (user: string) => string | undefined): string | undefined {
    const claims = this.claims(this.refreshKey, token);
    if (!claims || typeof claims.stamp !== "string") return undefined;
    const stamp = currentStamp(claims.sub);
    return stamp !== undefined && stamp === claims.stamp ? claims.sub : undefined;
  }

  private sign(key: Buffer, claims: Record<string, unknown>): string {
    const input = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return `${input}.${createHmac("sha256", key).update(input).digest("base64url")}`;
  }

  /** The claims of a well-formed, correctly signed, current docxy token of the kind `key` signs; never throws. */
  private claims(key: Buffer, token: string): (Record<string, unknown> & { sub: string }) | undefined {
    if (token.length > MAX_TOKEN) return undefined;
    const parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== HEADER || !SEGMENT.test(parts[1]!)) return undefined;
    const expected = Buffer.from(createHmac("sha256", key).update(`${HEADER}.${parts[1]}`).digest("base64url"));
    const given = Buffer.from(parts[2]!);
    // Comparing the canonical encodings also rejects the other spellings base64url decoding would accept.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;

    let claims: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
      claims = parsed as Record<string, unknown>;
    } catch {
      return undefined;
    }
    const { iss, sub, exp, nbf } = claims;
    const now = this.now() / 1000;
    if (iss !== ISSUER || typeof sub !== "string" || typeof exp !== "number" || typeof nbf !== "number") return undefined;
    if (now >= exp + LEEWAY_SECONDS || now < nbf - LEEWAY_SECONDS) return undefined;
    return { ...claims, sub };
  }
}

/** `repository[(class)]:<name>:<actions>`, where the name may hold `host:port`: split at the first and last colon. */
function grants(scopes: string[]): TokenAccess[] {
  const names = new Set<string>();
  for (const scope of scopes.flatMap((s) => s.split(" "))) {
    const first = scope.indexOf(":");
    const last = scope.lastIndexOf(":");
    if (first < 0 || last <= first) continue;
    // A class (`repository(plugin)`, Docker plugins) narrows the kind of content, not the repository: pull is pull.
    if (scope.slice(0, first).replace(/\(.*\)$/, "") !== "repository") continue;
    const name = scope.slice(first + 1, last);
    const actions = scope.slice(last + 1).split(",");
    if (name.length > MAX_NAME || !NAME.test(name)) continue;
    if (actions.includes("pull") || actions.includes("*")) names.add(name);
  }
  return [...names].slice(0, MAX_GRANTS).map((name) => ({ type: "repository", name, actions: ["pull"] }));
}

/** The shape `allows` relies on; tokens signed by another docxy version sharing the secret may differ. */
function isAccessList(value: unknown): value is TokenAccess[] {
  return (
    Array.isArray(value) &&
    value.every((a) => typeof a?.type === "string" && typeof a.name === "string" && Array.isArray(a.actions))
  );
}

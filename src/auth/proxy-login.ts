/**
 * `src/auth/`: token auth as clients see it — docxy's own users, logins and
 * tokens; the relay to an upstream's token service; challenges rewritten to
 * docxy's realm, and the public origin that realm is built from.
 *
 * The token endpoint when docxy has its own users: instead of forwarding to
 * the upstream, docxy checks the user and issues its own token
 * (auth/proxy-tokens.ts), in the shapes clients expect:
 * - GET with Basic credentials (`docker login`, containers/image): a static
 *   token also works as the password, for CI systems that hold one;
 * - POST `grant_type=password` (containerd) and `grant_type=refresh_token`
 *   (Docker holding an identity token);
 * - a `refresh_token` only when asked for (`offline_token=true` or
 *   `access_type=offline`), since Docker then switches to POSTs.
 * Failures are the JSON a token service answers; the password never leaves
 * this module. Password checks pass the login throttle first (auth/login-throttle.ts).
 */
import type { LoginThrottle } from "./login-throttle";
import type { ProxyTokens } from "./proxy-tokens";
import type { ProxyUsers } from "./users";

/** docxy's own users and the tokens it issues them. */
export interface ProxyAuth {
  users: ProxyUsers;
  tokens: ProxyTokens;
}

export interface LoginRequest {
  query: URLSearchParams;
  form?: URLSearchParams;
  authorization: string | null;
  /** The client's address, for the login throttle. */
  client: string;
}

export class ProxyLogin {
  constructor(
    private readonly users: ProxyUsers,
    private readonly tokens: ProxyTokens,
    private readonly throttle: LoginThrottle,
  ) {}

  async exchange(request: LoginRequest): Promise<Response> {
    const params = request.form ?? request.query;
    const scopes = params.getAll("scope");
    let user: string | undefined;
    if (request.form?.get("grant_type") === "refresh_token") {
      user = this.tokens.verifyRefresh(request.form.get("refresh_token") ?? "", (name) => this.users.credentialStamp(name));
    } else {
      const credentials = request.form?.get("grant_type") === "password" ? { name: request.form.get("username") ?? "", password: request.form.get("password") ?? "" } : basic(request.authorization);
      if (credentials) user = await this.verify(credentials.name, credentials.password, request.client);
    }
    if (!user) {
      return Response.json(
        { details: request.authorization || request.form ? "incorrect username or password" : "authentication required" },
        { status: 401, headers: { "www-authenticate": 'Basic realm="docxy"' } },
      );
    }
    const issued = this.tokens.issue(user, scopes);
    const offline = params.get("offline_token") === "true" || params.get("access_type") === "offline";
    const stamp = this.users.credentialStamp(user);
    return Response.json({
      ...issued,
      ...(request.form ? { scope: scopes.join(" ") } : {}),
      ...(offline && stamp ? { refresh_token: this.tokens.issueRefresh(user, stamp) } : {}),
    });
  }

  private async verify(name: string, password: string, client: string): Promise<string | undefined> {
    const check = async () => (await this.users.verifyPassword(name, password)) || this.users.verifyStaticToken(password) === name;
    // Credentials that verified a moment ago (Docker sends Basic on every token request) skip the throttle.
    const ok = this.users.recentlyVerified(name, password) ? await check() : await this.throttle.attempt(client, name, check);
    return ok ? name : undefined;
  }
}

function basic(header: string | null): { name: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

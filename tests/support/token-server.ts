// A Docker-Hub-like token server (auth.docker.io): GET and OAuth2 POST on /token, signing
// JWTs that distribution 2.8 accepts (jwt.ts). It records every request so proxy tests can
// assert on exactly what the proxy sent (service, scopes, credentials, grant type).
import { randomBytes } from "node:crypto";
import { signingKey, signToken, type Access } from "./jwt";

export interface TokenRequestRecord {
  method: string;
  path: string;
  /** query parameters in the order sent */
  query: [string, string][];
  /** an Authorization header was present */
  authorization: boolean;
  /** its scheme as sent ("Basic", "Bearer", ...), when present */
  authScheme?: string;
  /** the username, when the scheme is Basic */
  user?: string;
  /** POST form fields in the order sent; `password` and `refresh_token` values are "***" */
  form?: [string, string][];
  /** the status this server answered */
  status: number;
  /** the address the request came from (a proxy's outgoing address when docxy went through one) */
  peer?: string;
}

export interface TokenServerOptions {
  service: string;
  issuer: string;
  users: Record<string, string>;
  /** When set, only these User-Agents are served (others get 403): stands in for a network whose clients cannot reach auth.docker.io. */
  allowedAgents?: RegExp;
}

export interface TokenServer {
  url: string; // origin, no trailing slash
  realm: string; // url + "/token"
  log: TokenRequestRecord[];
  /** sign a token for these scopes under the same policy as /token, without an HTTP request */
  mint(scopes: string[], user?: string): string;
  stop(): Promise<void>;
}

const LIFETIME = 300; // Docker Hub's expires_in
const REDACTED = new Set(["password", "refresh_token"]);

const json = (status: number, body: unknown): Response => Response.json(body, { status });

/** `type:name:actions`; the name may itself contain ":" (host:port), so split at the first and last colon. */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(",") };
}

/** Policy: anonymous pulls anything outside `private/`; a known user pulls, pushes and deletes anything. */
function allowedActions(access: Access, user: string | undefined): string[] {
  if (access.type !== "repository") return [];
  if (user !== undefined) return ["pull", "push", "delete"];
  return access.name.startsWith("private/") ? [] : ["pull"];
}

/** The intersection of asked and allowed; a scope with nothing left is dropped, not an error. */
function grant(scopes: string[], user: string | undefined): Access[] {
  const granted: Access[] = [];
  for (const scope of scopes) {
    const asked = parseScope(scope);
    if (!asked) continue;
    const allowed = allowedActions(asked, user);
    const actions = asked.actions.includes("*") ? allowed : asked.actions.filter((a) => allowed.includes(a));
    if (actions.length > 0) granted.push({ ...asked, actions });
  }
  return granted;
}

function parseBasic(header: string): { user: string; password: string } | undefined {
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function startTokenServer(options: TokenServerOptions): TokenServer {
  const key = signingKey();
  const log: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>(); // refresh token -> user

  const mint = (scopes: string[], user?: string): string =>
    signToken(key, {
      issuer: options.issuer,
      subject: user ?? "",
      audience: options.service,
      access: grant(scopes, user),
      lifetimeSeconds: LIFETIME,
    });

  const issue = (scopes: string[], user: string | undefined, offline: boolean) => {
    const token = mint(scopes, user);
    const body: Record<string, unknown> = {
      token,
      access_token: token,
      expires_in: LIFETIME,
      issued_at: new Date().toISOString(),
    };
    if (offline && user !== undefined) {
      const refresh = randomBytes(24).toString("base64url");
      refreshTokens.set(refresh, user);
      body.refresh_token = refresh;
    }
    return body;
  };

  const checkPassword = (user: string, password: string): boolean =>
    Object.hasOwn(options.users, user) && options.users[user] === password;

  // GET /token: Docker Hub's classic flow; credentials in Basic, scopes repeated.
  const handleGet = (url: URL, authHeader: string | null): Response => {
    if (url.searchParams.get("service") !== options.service)
      return json(400, { details: `unknown service ${JSON.stringify(url.searchParams.get("service"))}` });
    let user: string | undefined;
    if (authHeader && /^basic /i.test(authHeader)) {
      const creds = parseBasic(authHeader);
      if (!creds || !checkPassword(creds.user, creds.password))
        return json(401, { details: "incorrect username or password" });
      user = creds.user;
    }
    const offline = url.searchParams.get("offline_token") === "true";
    return json(200, issue(url.searchParams.getAll("scope"), user, offline));
  };

  // POST /token: OAuth2 (docs/spec/auth/oauth.md); errors in RFC 6749 §5.2 shape.
  const handlePost = (form: URLSearchParams): Response => {
    const oauthError = (status: number, error: string, description: string) =>
      json(status, { error, error_description: description });
    if (form.get("service") !== options.service)
      return oauthError(400, "invalid_request", `unknown service ${JSON.stringify(form.get("service"))}`);
    if (!form.get("client_id")) return oauthError(400, "invalid_request", "client_id is required");
    let user: string;
    switch (form.get("grant_type")) {
      case "password": {
        const name = form.get("username") ?? "";
        if (!checkPassword(name, form.get("password") ?? ""))
          return oauthError(401, "invalid_grant", "incorrect username or password");
        user = name;
        break;
      }
      case "refresh_token": {
        const owner = refreshTokens.get(form.get("refresh_token") ?? "");
        if (owner === undefined) return oauthError(401, "invalid_grant", "unknown refresh token");
        user = owner;
        break;
      }
      default:
        return oauthError(400, "unsupported_grant_type", `grant_type ${JSON.stringify(form.get("grant_type"))}`);
    }
    const scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
    const body = issue(scopes, user, form.get("access_type") === "offline");
    body.scope = grant(scopes, user).map((a) => `${a.type}:${a.name}:${a.actions.join(",")}`).join(" ");
    return json(200, body);
  };

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req, server) {
      const url = new URL(req.url);
      const authHeader = req.headers.get("authorization");
      const record: TokenRequestRecord = {
        method: req.method,
        path: url.pathname,
        query: [...url.searchParams],
        authorization: authHeader !== null,
        status: 0,
        peer: server.requestIP(req)?.address,
      };
      if (authHeader) record.authScheme = authHeader.split(" ")[0];
      const basicUser = authHeader && /^basic /i.test(authHeader) ? parseBasic(authHeader)?.user : undefined;
      if (basicUser !== undefined) record.user = basicUser;
      log.push(record);

      let res: Response;
      if (options.allowedAgents && !options.allowedAgents.test(req.headers.get("user-agent") ?? "")) {
        res = json(403, { details: "unreachable from this client's network" });
      } else if (url.pathname !== "/token") res = json(404, { details: "not found" });
      else if (req.method === "GET") res = handleGet(url, authHeader);
      else if (req.method === "POST") {
        const form = new URLSearchParams(await req.text());
        record.form = [...form].map(([k, v]): [string, string] => [k, REDACTED.has(k) ? "***" : v]);
        res = handlePost(form);
      } else res = json(405, { details: "method not allowed" });
      record.status = res.status;
      return res;
    },
  });

  const url = `http://127.0.0.1:${server.port}`;
  return { url, realm: `${url}/token`, log, mint, stop: () => server.stop(true) };
}

/**
 * Registry requests when docxy has its own users: each must carry a token
 * docxy issued (or a static token), granting pull on the repository as the
 * client names it. Otherwise the answer is a 401 whose challenge sends the
 * client to docxy's token endpoint — on `/v2/` too, which is where Docker and
 * containers/image learn it (protocol.md §2.5).
 */
import type { ProxyAuth } from "../auth/proxy-login";
import { bearerToken } from "../oci/authorization";
import { RegistryError } from "../oci/errors";
import { formatBearerChallenge } from "../upstream/challenge";

/**
 * The user a registry request is from, or a 401 RegistryError carrying the
 * challenge. `repository` is the name as the client wrote it (registry prefix
 * included, before `library/`); undefined for `/v2/` itself.
 */
export function authenticate(auth: ProxyAuth, request: Request, origin: string, repository?: string): string {
  const token = bearerToken(request.headers.get("authorization"));
  let error: string | undefined;
  if (token) {
    const staticUser = auth.users.verifyStaticToken(token);
    if (staticUser) return staticUser;
    const verified = auth.tokens.verify(token);
    if (verified && (repository === undefined || auth.tokens.allows(verified, repository))) return verified.user;
    error = verified ? "insufficient_scope" : "invalid_token";
  }
  const challenge = formatBearerChallenge({
    realm: `${origin}/auth/token`,
    service: "docxy",
    scope: repository ? `repository:${repository}:pull` : undefined,
    error,
  });
  throw new RegistryError("UNAUTHORIZED", "authentication required", { headers: { "www-authenticate": challenge, "cache-control": "no-store" } });
}

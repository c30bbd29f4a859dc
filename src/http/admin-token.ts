/**
 * Whether a request carries the `[admin] token` as `Authorization: Bearer`.
 * Both sides are hashed before the constant-time comparison, so neither the
 * token's bytes nor its length show in the time taken. Never true when no
 * token is configured.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { bearerToken } from "../oci/authorization";

export function bearsAdminToken(request: Request, token: string): boolean {
  if (!token) return false;
  const given = bearerToken(request.headers.get("authorization"));
  return given !== undefined && timingSafeEqual(sha256(given), sha256(token));
}

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * `Authorization: Bearer <token>` (RFC 6750 §2.1), the way registry clients
 * present the tokens of the distribution token protocol — to docxy's own
 * users check, to the admin API, and to the upstream through docxy.
 */
export function bearerToken(authorization: string | null): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
}

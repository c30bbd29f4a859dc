/**
 * Registry errors as the protocol names them. Domain code throws these;
 * oci/responses.ts gives them their wire form (`{"errors":[{code,message,detail}]}`).
 * Codes and statuses follow distribution's errcode registry
 * (registry/api/v2/errors.go) and dist-spec v1.1.1 "Error Codes".
 */
export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  NOT_FOUND: 404,
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_INVALID: 400,
  PAGINATION_NUMBER_INVALID: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorOptions {
  detail?: unknown;
  /** Overrides the code's usual status, e.g. UNAVAILABLE as 502 or 504 for a failed upstream. */
  status?: number;
  headers?: Record<string, string>;
  cause?: unknown;
}

/**
 * `ociCode`, not `code`: Elysia reads a `code` field on thrown errors as its
 * own error kind (research/bun-elysia.md pitfall 13).
 */
export class RegistryError extends Error {
  readonly ociCode: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(ociCode: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "RegistryError";
    this.ociCode = ociCode;
    this.status = options.status ?? ERROR_STATUS[ociCode];
    this.detail = options.detail ?? null;
    this.headers = options.headers ?? {};
  }
}

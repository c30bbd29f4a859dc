/**
 * The single place where errors become HTTP responses: registry JSON
 * (`{"errors":[{code,message,detail}]}`) with the right status, for errors we
 * raise and for Elysia's own (its NOT_FOUND is plain text and its VALIDATION
 * a 422, neither of which a registry client understands). Unexpected errors
 * are logged with their stack and answered with a generic 500: never a stack
 * trace or an internal message on the wire.
 */
import { errorBody, RegistryError } from "../oci/errors";
import { API_VERSION, API_VERSION_HEADER } from "../oci/headers";
import type { Logger } from "../observability/logger";

export function registryErrorResponse(error: RegistryError, method: string): Response {
  const body = errorBody(error.ociCode, error.message, error.detail);
  const headers = new Headers(error.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  // Docker checks it on /v2/ answers, error or not, to tell a v2 registry (dist-spec "API Version
  // Check"); distribution sends it on every response, so docxy's own errors carry it too.
  headers.set(API_VERSION_HEADER, API_VERSION);
  // A HEAD error has no body (distribution does the same), but keeps its status.
  if (method === "HEAD") return new Response(null, { status: error.status, headers });
  headers.set("content-length", String(Buffer.byteLength(body)));
  return new Response(body, { status: error.status, headers });
}

export function errorResponse(code: string | number, error: unknown, request: Request, log: Logger): Response {
  if (error instanceof RegistryError) return registryErrorResponse(error, request.method);
  switch (code) {
    case "NOT_FOUND":
      return registryErrorResponse(new RegistryError("NOT_FOUND", `no route for ${new URL(request.url).pathname}`), request.method);
    case "VALIDATION":
    case "PARSE":
      return registryErrorResponse(new RegistryError("BAD_REQUEST", "malformed request"), request.method);
  }
  if (request.signal.aborted) {
    // The client left mid-request; the answer has nowhere to go.
    return new Response(null, { status: 499 });
  }
  const failure = error instanceof Error ? error : new Error(String(error));
  log.error("unexpected error", { path: new URL(request.url).pathname, error: failure.stack ?? failure.message });
  return registryErrorResponse(new RegistryError("UNKNOWN", "internal error"), request.method);
}

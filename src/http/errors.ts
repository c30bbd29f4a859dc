/**
 * The HTTP edge's error translation. Domain errors (RegistryError) already
 * know their answer (oci/responses.ts); what is left here is Elysia's own
 * errors — its NOT_FOUND is plain text and its VALIDATION a 422, neither of
 * which a registry client understands — and unexpected ones, which are logged
 * with their stack and answered with a generic 500: never a stack trace or an
 * internal message on the wire.
 */
import { RegistryError } from "../oci/errors";
import { registryErrorResponse } from "../oci/responses";
import type { Logger } from "../observability/logger";

export function errorResponse(code: string | number, error: unknown, request: Request, log: Pick<Logger, "error">): Response {
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

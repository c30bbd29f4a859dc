/**
 * What the sendfile port answers (cache/sendfile-redirects.ts): GET or HEAD
 * of `/blobs/<digest>?ticket=…` for a committed blob, as a `Bun.file` body,
 * which Bun.serve sends with sendfile and its exact Content-Length. Nothing
 * else is served here; errors are registry JSON, as on the proxy port.
 */
import type { BlobCache } from "../cache/blob-cache";
import type { SendfileRedirects } from "../cache/sendfile-redirects";
import { RegistryError } from "../oci/errors";
import { sendfileBlobDigest } from "../oci/paths";
import { blobHead } from "../oci/responses";
import type { Logger } from "../observability/logger";
import type { NetworkPolicy } from "../policy/network";
import { errorResponse } from "./errors";

export type SendfileHandler = (request: Request, peerAddress: string) => Promise<Response>;

export function createSendfileHandler(
  blobs: Pick<BlobCache, "committedFile">,
  redirects: Pick<SendfileRedirects, "admits">,
  network: Pick<NetworkPolicy, "check">,
  log: Pick<Logger, "error">,
): SendfileHandler {
  return async (request, peerAddress) => {
    try {
      return await serve(request, peerAddress);
    } catch (error) {
      // Translated as on the proxy port: unexpected ones logged with their stack, never sent.
      return errorResponse("UNKNOWN", error, request, log);
    }
  };

  async function serve(request: Request, peerAddress: string): Promise<Response> {
    // No X-Forwarded-For here: the port is for clients that reach docxy directly.
    network.check(peerAddress);
    if (request.method !== "GET" && request.method !== "HEAD") {
      throw new RegistryError("UNSUPPORTED", "this port only serves cached blobs", { headers: { allow: "GET, HEAD" } });
    }
    const url = new URL(request.url);
    const digest = sendfileBlobDigest(url.pathname);
    if (!digest) throw new RegistryError("NOT_FOUND", "this port only serves cached blobs, through redirects from the proxy port");
    if (!redirects.admits(digest, url.searchParams.get("ticket"))) {
      throw new RegistryError("DENIED", "missing, invalid or expired ticket: fetch the blob through the proxy port again");
    }
    const file = await blobs.committedFile(digest);
    if (!file) throw new RegistryError("BLOB_UNKNOWN", "blob no longer cached: fetch it through the proxy port again", { detail: { digest } });

    // Bun writes a file body's length itself; the head's is for HEAD (a null body keeps it,
    // bun-elysia.md pitfall 8) and for the access log.
    const head = blobHead(digest, file.size, request.method, request.headers.get("range"), "HIT");
    const { status, headers } = head;
    headers.set("content-disposition", "inline"); // Bun would name the local file otherwise
    if (head.status === 416 || request.method === "HEAD" || file.size === 0) return new Response(null, { status, headers });
    return new Response(Bun.file(file.path).slice(head.start, head.end + 1), { status, headers });
  }
}

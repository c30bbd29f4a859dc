/**
 * `/_fleet/fills/<digest>`: the bytes of a blob this node is filling, for the
 * other nodes of its fleet that follow the fill (fleet/peer-fill.ts), or of
 * one it has committed since (the follower asked just as the fill ended).
 *
 * Node-to-node only: a request must carry a valid signature under the
 * fleet's shared secret (fleet/signing.ts); anything else — a client with or
 * without a registry token — gets a registry-JSON refusal and no byte. A
 * single node (no `[fleet]`) refuses everything here. The network rules
 * apply as on every route; the per-address rate limit does not, since each
 * request stands for a client already counted on the node that asks.
 *
 * Tested in process: tests/http/routes/fleet.test.ts.
 */
import { Elysia } from "elysia";
import { FLEET_FILLS_PATH } from "../../fleet/peer-fill";
import { FLEET_SIGNATURE_HEADER } from "../../fleet/signing";
import { RegistryError } from "../../oci/errors";
import { blobHead } from "../../oci/responses";
import type { CacheHandle } from "../../cache/open-cache";
import type { Fleet } from "../../fleet/fleet";
import type { Guards } from "../guard";
import { contextOf } from "../request-context";

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** What the route uses of the services (tests hand in just these). */
export interface FleetRouteParts {
  guards: Pick<Guards, "network">;
  fleet: Pick<Fleet, "signer"> | undefined;
  cache: (Pick<CacheHandle, "ownFill"> & { blobs: Pick<CacheHandle["blobs"], "committedForPeer"> }) | undefined;
}

export function fleetRoutes(services: FleetRouteParts) {
  return new Elysia({ name: "docxy/fleet", detail: { hide: true } }).all("/_fleet/*", async ({ request }) => {
    const { network } = services.guards;
    network.check(network.clientAddress(contextOf(request).connection.remoteAddress, request.headers.get("x-forwarded-for")));
    const { fleet, cache } = services;
    const path = new URL(request.url).pathname;
    if (!fleet || !cache) throw new RegistryError("NOT_FOUND", "this node is not part of a fleet");
    if (!fleet.signer.verify(request.method, path, request.headers.get(FLEET_SIGNATURE_HEADER))) {
      throw new RegistryError("UNAUTHORIZED", "node-to-node requests only");
    }
    const digest = path.startsWith(FLEET_FILLS_PATH) ? path.slice(FLEET_FILLS_PATH.length) : "";
    if (!DIGEST.test(digest) || (request.method !== "GET" && request.method !== "HEAD")) {
      throw new RegistryError("NOT_FOUND", `unknown fleet path ${path}`);
    }
    const fill = await cache.ownFill(digest);
    if (fill?.joinable && fill.size !== undefined) return answer(request, digest, { size: fill.size, read: (start, end) => fill.read(start, end) });
    const stored = await cache.blobs.committedForPeer(digest);
    if (stored) return answer(request, digest, stored);
    throw new RegistryError("BLOB_UNKNOWN", "no fill of this blob here");
  });
}

interface Readable {
  size: number;
  read(start: number, end: number): ReadableStream<Uint8Array>;
  /** Called instead of reading, when no body is sent. */
  done?(): void;
}

/** 200 or 206 with the exact length: the follower counts the bytes against it. */
function answer(request: Request, digest: string, blob: Readable): Response {
  const head = blobHead(digest, blob.size, request.method, request.headers.get("range"), "FLEET");
  if (head.status === 416 || request.method === "HEAD" || blob.size === 0) {
    blob.done?.();
    return new Response(null, { status: head.status, headers: head.headers });
  }
  return new Response(blob.read(head.start, head.end), { status: head.status, headers: head.headers });
}

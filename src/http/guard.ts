/**
 * The checks every registry and token request passes before it is served,
 * in this order: who connects (CIDR allow/deny, the client address taken from
 * X-Forwarded-For only behind a trusted proxy), how often (per address, IPv6
 * per /64), what is pulled (image rules, on every routing mode since they run
 * after routing), and how fast blobs flow (per user, else per address).
 */
import { withLibraryPrefix } from "../oci/reference";
import type { BandwidthLimiter } from "../policy/bandwidth";
import type { ImagePolicy } from "../policy/image-rules";
import type { NetworkPolicy } from "../policy/network";
import { limitKey, type RequestLimiter } from "../policy/rate-limiter";
import type { PullPath } from "../oci/paths";
import type { Route } from "../upstream/routing";
import type { RequestContext } from "./request-context";

export interface Guards {
  network: NetworkPolicy;
  addressLimiter: RequestLimiter | undefined;
  userLimiter: RequestLimiter | undefined;
  /** The image rules in force now (a hot-reloaded file replaces them). */
  images: () => ImagePolicy;
  bandwidth: BandwidthLimiter | undefined;
}

/** Network policy and the per-address rate limit; records the client address for the access log. */
export async function admit(guards: Guards, request: Request, context: RequestContext): Promise<string> {
  const client = guards.network.clientAddress(context.connection.remoteAddress, request.headers.get("x-forwarded-for"));
  context.notes.client = client;
  guards.network.check(client);
  await guards.addressLimiter?.check(limitKey(client));
  return client;
}

/** The per-user rate limit, once docxy knows the user. */
export async function admitUser(guards: Guards, user: string): Promise<void> {
  await guards.userLimiter?.check(`user:${user}`);
}

/** The image rules, on the repository as the upstream names it (`docker.io/library/alpine`). */
export function checkImage(guards: Guards, route: Route, path: PullPath): void {
  const repository = route.upstream.autoLibraryPrefix ? withLibraryPrefix(path.name) : path.name;
  const byTag = path.kind === "manifests" && !path.reference!.includes(":");
  guards.images().check(route.upstream.registry, repository, byTag ? path.reference : undefined);
}

/** A blob body held to the configured rate, shared by all downloads of the same user or address. */
export function shaped(guards: Guards, context: RequestContext, response: Response): Response {
  if (!guards.bandwidth || !response.body || response.status >= 300) return response;
  const { user, client } = context.notes;
  const key = user ? `user:${user}` : limitKey(client ?? "");
  return new Response(guards.bandwidth.throttle(key, response.body), { status: response.status, headers: response.headers });
}

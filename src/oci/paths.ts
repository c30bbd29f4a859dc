/**
 * The one grammar of the paths docxy serves: the pull API under `/v2/`, the
 * registry prefix a client may put in front of a repository name, and the
 * sendfile port's `/blobs/<digest>`.
 *
 * Names contain slashes, so an API path is split on the LAST `/manifests/`,
 * `/blobs/`, `/referrers/` or `/tags/list` (protocol.md fact 1): the greedy
 * `(.+)` does exactly that. Everything is validated against the grammar
 * (reference.ts) before it can reach an upstream URL.
 */
import { RegistryError } from "./errors";
import { assertDigest, assertManifestReference, assertRepositoryName, isRegistryHost } from "./reference";

export type PullKind = "manifests" | "blobs" | "tags" | "referrers";

export interface PullPath {
  name: string;
  kind: PullKind;
  /** Tag or digest for manifests; digest for blobs and referrers; absent for tags/list. */
  reference?: string;
}

/** `<name>/<kind>/<reference>` or `<name>/tags/list`, the kind taken from the last segment that names one. */
const API_PATH = /^(.+)\/(?:(manifests|blobs|referrers)\/([^/]+)|tags\/list)$/;

/** Only sha256 is ever committed to the cache, so nothing else can have a ticket. */
const SENDFILE_BLOB = /^\/blobs\/(sha256:[a-f0-9]{64})$/;

/**
 * The pull API path `rest` (the part after `/v2/`, still percent-encoded:
 * valid names never need encoding); undefined when it is no pull API path at
 * all, a RegistryError when it is one with an invalid name or reference.
 */
export function parsePullPath(rest: string): PullPath | undefined {
  const match = API_PATH.exec(rest);
  if (!match) return undefined;
  const [, name, kind, reference] = match as unknown as [string, string, Exclude<PullKind, "tags"> | undefined, string | undefined];
  assertRepositoryName(name);
  if (kind === undefined) return { name, kind: "tags" };
  if (kind === "manifests") assertManifestReference(reference!);
  else assertDigest(reference!);
  return { name, kind, reference };
}

/**
 * The registry a client named in front of the repository
 * (`ghcr.io/owner/img/manifests/tag`) and the path as that registry knows it.
 * Only a host-like first segment followed by a whole API path counts:
 * `my.app/manifests/latest` is the repository `my.app`, not a registry.
 */
export function registryPrefix(rest: string): { registry: string; rest: string } | undefined {
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const registry = rest.slice(0, slash);
  const unprefixed = rest.slice(slash + 1);
  if (!isRegistryHost(registry) || !API_PATH.test(unprefixed)) return undefined;
  return { registry: registry.toLowerCase(), rest: unprefixed };
}

/** The digest a sendfile port path asks for, or undefined for any other path. */
export function sendfileBlobDigest(pathname: string): string | undefined {
  return SENDFILE_BLOB.exec(pathname)?.[1];
}

export function unsupportedMethod(method: string): RegistryError {
  return new RegistryError("UNSUPPORTED", `${method} is not supported: docxy is a pull-only proxy`, {
    headers: { allow: "GET, HEAD" },
  });
}

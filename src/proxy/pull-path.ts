/**
 * What a `/v2/<name>/<kind>/<reference>` path asks for.
 *
 * Names contain slashes, so the path is split on the LAST `/manifests/`,
 * `/blobs/`, `/referrers/` or `/tags/list` (protocol.md fact 1): the greedy
 * `(.+)` does exactly that. Everything is validated against the grammar
 * before it can reach an upstream URL.
 */
import { RegistryError } from "../oci/errors";
import { assertDigest, assertManifestReference, assertRepositoryName } from "../oci/reference";

export type PullKind = "manifests" | "blobs" | "tags" | "referrers";

export interface PullPath {
  name: string;
  kind: PullKind;
  /** Tag or digest for manifests; digest for blobs and referrers; absent for tags/list. */
  reference?: string;
}

const WITH_REFERENCE = /^(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS_LIST = /^(.+)\/tags\/list$/;

/** `rest` is the part after `/v2/`, still percent-encoded (valid names never need encoding). */
export function parsePullPath(rest: string): PullPath | undefined {
  const tags = TAGS_LIST.exec(rest);
  if (tags) {
    assertRepositoryName(tags[1]!);
    return { name: tags[1]!, kind: "tags" };
  }
  const match = WITH_REFERENCE.exec(rest);
  if (!match) return undefined;
  const [, name, kind, reference] = match as unknown as [string, string, PullKind, string];
  assertRepositoryName(name);
  if (kind === "manifests") assertManifestReference(reference);
  else assertDigest(reference);
  return { name, kind, reference };
}

export function unsupportedMethod(method: string): RegistryError {
  return new RegistryError("UNSUPPORTED", `${method} is not supported: docxy is a pull-only proxy`, {
    headers: { allow: "GET, HEAD" },
  });
}

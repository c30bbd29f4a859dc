/**
 * The distribution-spec grammar for repository names, tags and digests.
 *
 * Every value that reaches an upstream URL is validated here first: a name or
 * reference outside the grammar is answered here (400, or 404 for a manifest
 * reference that is no tag), never something we forward. Sources: opencontainers/distribution-spec v1.1.1 spec.md ("Pulling
 * manifests"), image-spec descriptor.md (digests).
 */
import { RegistryError } from "./errors";

const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const NAME = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
/** Encoded lengths the spec fixes for the registered algorithms. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** Clients cap `host[:port]/name` at 255 characters (dist-spec); we cap the name. */
const MAX_NAME_LENGTH = 255;

export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function isTag(reference: string): boolean {
  return TAG.test(reference);
}

export function isDigest(reference: string): boolean {
  if (!DIGEST.test(reference)) return false;
  const [algorithm, encoded] = reference.split(":", 2) as [string, string];
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) return true; // unregistered algorithms: the upstream decides
  return encoded.length === length && /^[a-f0-9]+$/.test(encoded);
}

/** A DNS name or IPv4 address with an optional port, as reference/regexp.go's domain. */
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$/;

/**
 * Whether the first segment of a name is a registry rather than a namespace:
 * host-like with a `.` or `:`, or `localhost` — Docker's own rule
 * (reference/normalize.go). `ghcr` or `quay` alone are Docker Hub namespaces.
 */
export function isRegistryHost(segment: string): boolean {
  return HOST.test(segment) && (segment.includes(".") || segment.includes(":") || segment === "localhost");
}

export function assertRepositoryName(name: string): void {
  if (!isRepositoryName(name)) {
    throw new RegistryError("NAME_INVALID", `invalid repository name: ${JSON.stringify(name)}`, { detail: { name } });
  }
}

export function assertDigest(digest: string): void {
  if (!isDigest(digest)) {
    throw new RegistryError("DIGEST_INVALID", `invalid digest: ${JSON.stringify(digest)}`, { detail: { digest } });
  }
}

/**
 * A manifest reference is a tag or a digest. A reference that is neither
 * names no manifest: `404 MANIFEST_UNKNOWN`, as distribution answers and as
 * the dist-spec conformance suite expects for `.INVALID_MANIFEST_NAME`
 * (conformance/01_pull_test.go, "HEAD/GET nonexistent manifest should return
 * 404"). TAG_INVALID is a schema1 push code the OCI error table does not list.
 */
export function assertManifestReference(reference: string): void {
  if (reference.includes(":")) return assertDigest(reference);
  if (!isTag(reference)) {
    throw new RegistryError("MANIFEST_UNKNOWN", `no manifest named ${JSON.stringify(reference)}: not a valid tag`, { detail: { tag: reference } });
  }
}

/**
 * Docker Hub keeps official images under `library/`; clients add the prefix
 * only for docker.io (distribution reference/normalize.go), so a user typing
 * `docxy:5000/alpine` sends `alpine` and we add it server-side, as Wharf does.
 */
export function withLibraryPrefix(name: string): string {
  return name.includes("/") ? name : `library/${name}`;
}

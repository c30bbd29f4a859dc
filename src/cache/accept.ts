/**
 * What a client's Accept header says about manifests. Clients send it very
 * differently (protocol.md fact 5): containers/image and Docker as several
 * header lines (joined with ", " by the time we see them), containerd as one
 * line ending in `*\/*`.
 */
const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

function mediaTypes(accept: string | null): string[] {
  return (accept ?? "")
    .split(",")
    .map((part) => part.split(";")[0]!.trim().toLowerCase())
    .filter(Boolean);
}

/** Whether a client sending `accept` takes a manifest of `mediaType`. */
export function accepts(accept: string | null, mediaType: string): boolean {
  const types = mediaTypes(accept);
  return types.includes("*/*") || types.includes(mediaType.toLowerCase());
}

/**
 * The key under which a tag's answer is remembered: the manifest types the
 * client takes (a registry answers the same tag differently per Accept).
 * `*` for clients that take anything.
 */
export function acceptClass(accept: string | null): string {
  const types = mediaTypes(accept);
  if (types.includes("*/*")) return "*";
  return MANIFEST_TYPES.filter((t) => types.includes(t)).join(",") || "none";
}

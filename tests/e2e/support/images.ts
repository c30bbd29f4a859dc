/** Small helpers over the upstream's test images (tests/support/images.ts). */
import type { ManifestInfo, TestImage } from "../../support/upstream";

/** Go's GOARCH for this machine: what every client picks from a multi-platform index. */
export const HOST_ARCH = process.arch === "x64" ? "amd64" : process.arch;

/** The manifest a client on this machine pulls from `image` (the only one, or the host's child). */
export function hostManifest(image: TestImage): ManifestInfo {
  const found = image.manifests.find((m) => m.platform.os === "linux" && m.platform.architecture === HOST_ARCH);
  if (!found) throw new Error(`${image.repository} has no linux/${HOST_ARCH} manifest`);
  return found;
}

// The test image set: what the upstream serves, with every digest and the exact manifest bytes,
// so tests can compare what a client got through the proxy byte for byte.
import { join } from "node:path";
import { bigLayer, sha256, smallLayer, type LayerBlob } from "./layers";
import type { BlobSource, ManifestPush, RepoContent } from "./push";

export const MediaType = {
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Layer extends Descriptor {
  /** sha256 of the uncompressed tar, as listed in the config's rootfs.diff_ids */
  diffId: string;
}

export interface ManifestInfo extends Descriptor {
  bytes: Uint8Array<ArrayBuffer>;
  platform: Platform;
  config: Descriptor;
  layers: Layer[];
}

export interface IndexInfo extends Descriptor {
  bytes: Uint8Array<ArrayBuffer>;
}

export interface TestImage {
  repository: string;
  tags: string[];
  /** what the tags point to: the index/list when there is one, else the single manifest */
  digest: string;
  mediaType: string;
  bytes: Uint8Array<ArrayBuffer>;
  index?: IndexInfo;
  /** the index's children in index order, or the one manifest */
  manifests: ManifestInfo[];
}

export interface TestImages {
  /** library/alpine:latest and :3.20, a Docker manifest list of linux/amd64 + linux/arm64/v8 */
  alpine: TestImage;
  /** library/nginx:latest, an OCI index of linux/amd64 + linux/arm64/v8; both share their 2nd layer */
  nginx: TestImage;
  /** acme/app:v1, one schema2 manifest (linux/amd64) with two layers */
  app: TestImage;
  /** private/secret:latest, one OCI manifest; only a logged-in user may pull it */
  secret: TestImage;
  /** library/manytags:t000..t119, one schema2 manifest under 120 tags */
  manytags: TestImage;
  /** library/big:latest, one schema2 manifest with a >= 256 MiB layer; only with bigLayer */
  big?: TestImage;
}

export interface BuiltImages {
  images: TestImages;
  repos: RepoContent[];
}

type Format = "docker" | "oci";
const AMD64: Platform = { os: "linux", architecture: "amd64" };
const ARM64: Platform = { os: "linux", architecture: "arm64", variant: "v8" };
const encoder = new TextEncoder();

/** A small root filesystem layer whose files name the image and platform (so digests differ). */
function fsLayer(image: string, platform: Platform, part: string): LayerBlob {
  const arch = [platform.architecture, platform.variant].filter(Boolean).join("/");
  return smallLayer([
    { path: "etc/" },
    { path: `etc/${part}-release`, content: `IMAGE=${image}\nPLATFORM=${platform.os}/${arch}\nPART=${part}\n` },
    { path: "usr/" },
    { path: "usr/share/" },
    { path: `usr/share/${part}.txt`, content: `${part} of ${image}\n`.repeat(20) },
  ]);
}

/** A manifest and its config. Docker manifests are indented like Docker's own, OCI ones compact. */
function manifest(format: Format, image: string, platform: Platform, layers: LayerBlob[], blobs: BlobSource[]): ManifestInfo {
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: "2024-01-01T00:00:00Z",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"], Labels: { "org.docxy.test": image } },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `docxy test layer ${i}` })),
  };
  const configBytes = encoder.encode(JSON.stringify(config));
  const configDesc: Descriptor = {
    mediaType: format === "docker" ? MediaType.dockerConfig : MediaType.ociConfig,
    digest: sha256(configBytes),
    size: configBytes.length,
  };
  const layerType = format === "docker" ? MediaType.dockerLayer : MediaType.ociLayer;
  const layerDescs: Layer[] = layers.map((l) => ({ mediaType: layerType, digest: l.digest, size: l.size, diffId: l.diffId }));
  const mediaType = format === "docker" ? MediaType.dockerManifest : MediaType.ociManifest;
  const body = {
    schemaVersion: 2,
    mediaType,
    config: configDesc,
    layers: layerDescs.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  };
  const bytes = encoder.encode(format === "docker" ? JSON.stringify(body, null, 3) : JSON.stringify(body));
  blobs.push({ digest: configDesc.digest, size: configDesc.size, data: configBytes }, ...layers);
  return { mediaType, digest: sha256(bytes), size: bytes.length, bytes, platform, config: configDesc, layers: layerDescs };
}

function indexOf(format: Format, children: ManifestInfo[]): IndexInfo {
  const mediaType = format === "docker" ? MediaType.dockerList : MediaType.ociIndex;
  const body = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })),
  };
  const bytes = encoder.encode(format === "docker" ? JSON.stringify(body, null, 3) : JSON.stringify(body));
  return { mediaType, digest: sha256(bytes), size: bytes.length, bytes };
}

/** Describe one repository and the pushes that create it. */
function image(repository: string, tags: string[], manifests: ManifestInfo[], blobs: BlobSource[], index?: IndexInfo) {
  const top = index ?? manifests[0]!;
  const unique = [...new Map(blobs.map((b) => [b.digest, b])).values()];
  const pushes: ManifestPush[] = [
    ...(index ? manifests.map((m) => ({ reference: m.digest, mediaType: m.mediaType, digest: m.digest, bytes: m.bytes })) : []),
    ...tags.map((reference) => ({ reference, mediaType: top.mediaType, digest: top.digest, bytes: top.bytes })),
  ];
  const info: TestImage = { repository, tags, digest: top.digest, mediaType: top.mediaType, bytes: top.bytes, manifests };
  if (index) info.index = index;
  return { info, repo: { repository, blobs: unique, manifests: pushes } };
}

function multiArch(format: Format, repository: string, tags: string[], extraShared?: LayerBlob) {
  const blobs: BlobSource[] = [];
  const children = [AMD64, ARM64].map((p) =>
    manifest(format, repository, p, [fsLayer(repository, p, "base"), ...(extraShared ? [extraShared] : [])], blobs),
  );
  return image(repository, tags, children, blobs, indexOf(format, children));
}

function single(format: Format, repository: string, tags: string[], layerParts: string[]) {
  const blobs: BlobSource[] = [];
  const m = manifest(format, repository, AMD64, layerParts.map((part) => fsLayer(repository, AMD64, part)), blobs);
  return image(repository, tags, [m], blobs);
}

/** The small images, built in memory (a few KiB each, reproducible digests). */
export function buildSmallImages(): BuiltImages {
  const alpine = multiArch("docker", "library/alpine", ["latest", "3.20"]);
  const nginx = multiArch("oci", "library/nginx", ["latest"], fsLayer("library/nginx", { os: "linux", architecture: "any" }, "html"));
  const app = single("docker", "acme/app", ["v1"], ["base", "app"]);
  const secret = single("oci", "private/secret", ["latest"], ["secret"]);
  const tags = Array.from({ length: 120 }, (_, i) => `t${String(i).padStart(3, "0")}`);
  const manytags = single("docker", "library/manytags", tags, ["base"]);
  const all = { alpine, nginx, app, secret, manytags };
  return {
    images: { alpine: alpine.info, nginx: nginx.info, app: app.info, secret: secret.info, manytags: manytags.info },
    repos: Object.values(all).map((x) => x.repo),
  };
}

/**
 * Another image under an existing name (e.g. `acme/app:v1` as a second registry has it), with
 * content of its own, so tests can tell by digest which upstream answered.
 */
export function buildVariantImage(repository: string, tag: string, variant: string): { image: TestImage; repo: RepoContent } {
  const { info, repo } = single("oci", repository, [tag], [`variant-${variant}`]);
  return { image: info, repo };
}

export const BIG_LAYER_BYTES = 256 * 1024 * 1024;

/** library/big:latest; its layer is streamed into `dir` (about 256 MiB on disk). */
export async function buildBigImage(dir: string): Promise<{ image: TestImage; repo: RepoContent }> {
  const layer = await bigLayer(join(dir, "big-layer.tar.gz"), BIG_LAYER_BYTES);
  const blobs: BlobSource[] = [];
  const m = manifest("docker", "library/big", AMD64, [layer], blobs);
  const { info, repo } = image("library/big", ["latest"], [m], blobs);
  return { image: info, repo };
}

/** Where a blob lives under a registry's filesystem root (and thus under the CDN). */
export function blobPath(rootDir: string, digest: string): string {
  const hex = digest.replace(/^sha256:/, "");
  return join(rootDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}

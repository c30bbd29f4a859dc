/**
 * Pre-loading an image into the cache before clients need it (an offline
 * window, a fleet rollout): the image is pulled through docxy's own pull
 * path, as docxy itself, exactly as a client pull would fill the cache — its
 * manifest, the children for the requested platforms, their configs and
 * layers. Progress is reported step by step.
 */
import { RegistryError } from "../oci/errors";
import type { PullKind } from "../oci/paths";
import type { PullRequest, RegistryReads } from "../proxy/pull-request";
import { knownRegistry } from "../upstream/routing";
import type { UpstreamTable } from "../upstream/table";
import type { CacheIndex } from "./cache-index";
import { parseImageEntry } from "./image-list";

export interface PrewarmStep {
  kind: "manifest" | "blob";
  digest: string;
  bytes: number;
  /** X-Cache of the answer: MISS when it was fetched now, HIT when it was already there. */
  cache: string;
}

const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

interface Descriptor {
  digest: string;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** A read of `registry/repository` as docxy itself (its account, or anonymous), the way a client's would go. */
export function ownRead(upstreams: UpstreamTable, registry: string, repository: string, kind: PullKind, reference?: string): PullRequest {
  return {
    path: { name: repository, kind, reference },
    identity: "proxy",
    method: "GET",
    query: new URLSearchParams(),
    headers: new Headers({ accept: ACCEPT }),
    route: { upstream: knownRegistry(upstreams, registry), via: "default" },
    origin: "http://localhost",
  };
}

export interface PrewarmOptions {
  /**
   * When given, a blob this index holds and links to the repository is
   * reported as a HIT without reading it: a scheduled run or a pin's refresh
   * then costs only the manifests, not a read of every cached layer.
   */
  index?: Pick<CacheIndex, "getBlob" | "hasLink">;
  /** Called with each child manifest's and blob's digest before it is asked for (pins.ts pins it first, so no eviction takes it in between). */
  fetching?: (digest: string) => void;
}

export async function* prewarm(
  reads: RegistryReads,
  upstreams: UpstreamTable,
  image: string,
  platforms: string[] = [],
  options: PrewarmOptions = {},
): AsyncGenerator<PrewarmStep> {
  const { registry, repository, reference } = oneImage(image);
  const upstream = knownRegistry(upstreams, registry);
  const request = (kind: "manifests" | "blobs", ref: string) => {
    if (kind === "manifests" && ref !== reference) options.fetching?.(ref);
    return ownRead(upstreams, registry, repository, kind, ref);
  };
  const fetchManifest = async (ref: string) => {
    const response = await reads.answer(request("manifests", ref));
    if (!response.ok) throw new RegistryError("MANIFEST_UNKNOWN", `${registry}/${repository}:${ref}: upstream answered ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const step: PrewarmStep = { kind: "manifest", digest: response.headers.get("docker-content-digest") ?? ref, bytes: bytes.length, cache: response.headers.get("x-cache") ?? "" };
    return { step, manifest: JSON.parse(new TextDecoder().decode(bytes)) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] } };
  };

  const top = await fetchManifest(reference);
  yield top.step;
  const images = top.manifest.manifests
    ? await Promise.all(top.manifest.manifests.filter((m) => wanted(m, platforms)).map((m) => fetchManifest(m.digest)))
    : [top];
  if (top.manifest.manifests) for (const child of images) yield child.step;

  const blobs = new Set(images.flatMap(({ manifest }) => [manifest.config, ...(manifest.layers ?? [])].filter((d) => d !== undefined).map((d) => d.digest)));
  for (const digest of blobs) {
    options.fetching?.(digest);
    const held = options.index?.hasLink(upstream.name, repository, digest) ? options.index.getBlob(digest) : undefined;
    if (held) {
      yield { kind: "blob", digest, bytes: held.size, cache: "HIT" };
      continue;
    }
    const response = await reads.answer(request("blobs", digest));
    if (!response.ok) throw new RegistryError("BLOB_UNKNOWN", `${digest}: upstream answered ${response.status}`);
    let bytes = 0;
    for await (const chunk of response.body ?? []) bytes += chunk.length; // drained: the fill goes to its end
    yield { kind: "blob", digest, bytes, cache: response.headers.get("x-cache") ?? "" };
  }
}

/** `linux/amd64`, `linux/arm64/v8`; no filter means every platform. */
function wanted(descriptor: Descriptor, platforms: string[]): boolean {
  if (platforms.length === 0) return true;
  const p = descriptor.platform;
  if (!p) return false;
  return platforms.some((want) => {
    const [os, arch, variant] = want.split("/");
    return p.os === os && p.architecture === arch && (variant === undefined || p.variant === variant);
  });
}

/** The image a pre-warm names, read as `docker pull` reads it (cache/image-list.ts): one image, no glob. */
function oneImage(image: string): { registry: string; repository: string; reference: string } {
  let entry;
  try {
    entry = parseImageEntry(image);
  } catch (error) {
    throw new RegistryError("NAME_INVALID", (error as Error).message);
  }
  if (entry.repositoryGlob || entry.tagGlob || entry.platforms.length > 0) {
    throw new RegistryError("NAME_INVALID", `${JSON.stringify(image)}: a pre-warm names one image, without "*" or platforms (give those apart)`);
  }
  return entry;
}

/**
 * What is in the cache, for people (the status page's cache browser):
 * repositories, then a repository's tags with the platforms of their index
 * manifests, each with its size and when it was last pulled.
 *
 * Sizes come from the cached manifests themselves: an image is its manifest,
 * config and layers, each digest counted once per image (layers shared
 * between platforms of one index count once for the tag, once in each
 * platform). `cachedBytes` is the part of that stored here now: a client may
 * have pulled one platform only, and eviction may have taken layers.
 * A child manifest that is not cached names no layers, so its platform is
 * marked incomplete rather than guessed.
 *
 * Reads only the index and manifests (small, capped), never a layer.
 */
import { MANIFEST_LIMIT } from "../upstream/body-limit";
import type { BlobStorage } from "./blob-storage";
import type { CachedRepository, CacheIndex } from "./cache-index";

/** Whether a `[cache] pin` entry names the repository (its tags say which content is pinned). */
export type PinnedRule = (upstream: string, repository: string) => boolean;

export interface RepositorySummary extends CachedRepository {
  pinned: boolean;
}

export interface RepositoryList {
  repositories: RepositorySummary[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

export interface PlatformView {
  /** os/architecture[/variant], e.g. linux/arm64/v8; "unknown/unknown" for attestations. */
  platform: string;
  digest: string;
  size: number;
  cachedBytes: number;
  /** False when the platform's manifest is not cached: its layers are unknown and not counted. */
  complete: boolean;
}

export interface TagView {
  tag: string;
  digest: string;
  mediaType: string;
  /** When docxy last asked the upstream what the tag points to (milliseconds since the epoch). */
  fetchedAt: number;
  /** The latest pull of the tag's manifest from the cache, or its fetch. */
  lastPulled: number;
  size: number;
  cachedBytes: number;
  pinned: boolean;
  /** The index's platforms; empty for a single-platform manifest. */
  platforms: PlatformView[];
}

export interface RepositoryView {
  upstream: string;
  repository: string;
  pinned: boolean;
  tags: TagView[];
  /** More tags exist than `tagLimit` returned. */
  more: boolean;
}

interface Descriptor {
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** A parsed manifest: an index's children or an image's blobs. */
type Parsed = { children: Descriptor[] } | { blobs: Descriptor[] } | undefined;

export class CacheBrowser {
  constructor(
    private readonly index: CacheIndex,
    private readonly storage: BlobStorage,
    private readonly pinned: PinnedRule = () => false,
  ) {}

  repositories(options: { after?: string; limit: number; contains?: string; publicOnly: boolean }): RepositoryList {
    // One more than asked tells whether a next page exists.
    const rows = this.index.repositories({ after: parseCursor(options.after), limit: options.limit + 1, contains: options.contains, publicOnly: options.publicOnly });
    const page = rows.slice(0, options.limit).map((r) => ({ ...r, pinned: this.pinned(r.upstream, r.repository) }));
    const last = page.at(-1);
    return { repositories: page, ...(rows.length > options.limit && last ? { next: `${last.upstream}/${last.repository}` } : {}) };
  }

  async repository(upstream: string, repository: string, tagLimit: number): Promise<RepositoryView> {
    const rows = this.index.repositoryTags(upstream, repository);
    const manifests = new Map<string, Promise<Parsed>>(); // many tags often name one digest
    const read = (digest: string) => {
      let parsed = manifests.get(digest);
      if (!parsed) manifests.set(digest, (parsed = this.readManifest(digest)));
      return parsed;
    };
    const tags: TagView[] = [];
    for (const row of rows.slice(0, tagLimit)) {
      const top = await read(row.digest);
      const own = this.index.getBlob(row.digest);
      const sizes = new Map<string, number>([[row.digest, own?.size ?? 0]]);
      const platforms: PlatformView[] = [];
      if (top && "children" in top) {
        for (const child of top.children) {
          const image = await read(child.digest);
          const blobs = new Map<string, number>([[child.digest, child.size]]);
          if (image && "blobs" in image) for (const blob of image.blobs) blobs.set(blob.digest, blob.size);
          for (const [digest, size] of blobs) sizes.set(digest, size);
          platforms.push({ platform: platformName(child), digest: child.digest, ...this.measure(blobs), complete: image !== undefined });
        }
      } else if (top) {
        for (const blob of top.blobs) sizes.set(blob.digest, blob.size);
      }
      tags.push({
        tag: row.tag,
        digest: row.digest,
        mediaType: row.mediaType,
        fetchedAt: row.fetchedAt,
        lastPulled: Math.max(row.fetchedAt, own?.lastAccess ?? 0),
        ...this.measure(sizes),
        // What eviction skips (cache/pins.ts records it), not what the names suggest.
        pinned: this.index.isPinned(row.digest),
        platforms,
      });
    }
    return { upstream, repository, pinned: this.pinned(upstream, repository), tags, more: rows.length > tagLimit };
  }

  private measure(blobs: Map<string, number>): { size: number; cachedBytes: number } {
    let size = 0;
    let cachedBytes = 0;
    for (const [digest, declared] of blobs) {
      size += declared;
      cachedBytes += this.index.getBlob(digest)?.size ?? 0;
    }
    return { size, cachedBytes };
  }

  /** The cached manifest under `digest`, or undefined when it is not cached or not a manifest. */
  private async readManifest(digest: string): Promise<Parsed> {
    const known = this.index.getBlob(digest);
    if (!known?.mediaType || known.size > MANIFEST_LIMIT.bytes) return undefined;
    const stored = await this.storage.open(digest).catch(() => undefined);
    if (!stored || stored.size === 0) return undefined;
    try {
      const body = JSON.parse(await new Response(stored.stream(0, stored.size - 1)).text());
      if (Array.isArray(body.manifests)) return { children: body.manifests.filter(isDescriptor) };
      if (Array.isArray(body.layers)) return { blobs: [body.config, ...body.layers].filter(isDescriptor) };
    } catch {
      // Deleted meanwhile, or not JSON: shown as not cached.
    }
    return undefined;
  }
}

function isDescriptor(value: unknown): value is Descriptor {
  const d = value as Descriptor | null;
  return typeof d?.digest === "string" && typeof d.size === "number";
}

function platformName({ platform }: Descriptor): string {
  if (!platform?.os || !platform.architecture) return "unknown/unknown";
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

/** "upstream/repository" (upstream names have no slash) back into its parts. */
function parseCursor(after: string | undefined): { upstream: string; repository: string } | undefined {
  const slash = after?.indexOf("/") ?? -1;
  return after && slash > 0 ? { upstream: after.slice(0, slash), repository: after.slice(slash + 1) } : undefined;
}

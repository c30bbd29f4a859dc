/**
 * Pinned images (`[cache] pin`): fetched when missing, refreshed on their tag
 * TTL, and recorded in the cache index as pinned, so eviction passes them by
 * whatever max_size and max_age say (sqlite-index.ts `oldest`,
 * fleet/fleet-eviction.ts).
 *
 * Each entry is pulled through docxy's own pull path (prewarm.ts), with no
 * client: the first round at start fetches what is missing, and each later
 * round, once the entry's tag TTL has passed, asks the cache for the tag
 * again, which revalidates it upstream as a client's pull would. What the
 * pull touched (index, children, configs, layers) becomes the entry's pinned
 * set; when the tag moved, the old content is released to normal eviction.
 * Each child manifest and blob is pinned before it is asked for, so a full
 * cache's eviction cannot take it mid-pull (the top manifest, whose digest a
 * tag only tells on arrival, right after). A round that fails (the upstream
 * down) keeps the previous set pinned.
 *
 * Globs cannot be pulled by themselves: a tag glob (`app:1.*`) pins the tags
 * of the repository's tag list that match; a registry or repository glob
 * (`ghcr.io/acme/*`) pins the cached tags that match, i.e. what clients
 * already pulled.
 */
import type { Logger } from "../observability/logger";
import type { RegistryReads } from "../proxy/pull-request";
import type { UpstreamTable } from "../upstream/table";
import type { CacheIndex } from "./cache-index";
import { entryMatches, imageReference, type ImageEntry, tagMatches } from "./image-list";
import { ownRead, prewarm } from "./prewarm";

export interface PinKeeperOptions {
  entries: ImageEntry[];
  reads: RegistryReads;
  upstreams: UpstreamTable;
  index: CacheIndex;
  /** The tag TTL (cache/tag-ttl.ts): how often an entry is refreshed. */
  ttl: (repository: string, tag: string) => number;
  log: Logger;
  now?: () => number;
}

/** Cached tags a repository glob is matched against, newest first. */
const CACHED_TAGS_SCANNED = 10_000;
/** Rounds never follow each other closer than this, whatever a TTL says. */
const MIN_WAIT_MS = 1000;

export class PinKeeper {
  private readonly due = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private current: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: PinKeeperOptions) {
    // Entries removed from the configuration pin nothing any more.
    options.index.retainPins(options.entries.map((e) => e.text));
  }

  /** The first round now, then a round whenever an entry's TTL has passed. */
  start(): void {
    if (this.options.entries.length > 0) void this.round();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Refreshes every entry that is due; one round at a time (a call during a round shares it). */
  round(): Promise<void> {
    this.current ??= this.refreshDue().finally(() => {
      this.current = undefined;
      this.schedule();
    });
    return this.current;
  }

  private async refreshDue(): Promise<void> {
    const { entries, ttl, now = Date.now } = this.options;
    for (const entry of entries) {
      if ((this.due.get(entry.text) ?? 0) > now()) continue;
      await this.refresh(entry);
      this.due.set(entry.text, now() + ttl(entry.repository, entry.reference));
    }
  }

  private schedule(): void {
    if (this.stopped || this.due.size === 0) return;
    const { now = Date.now } = this.options;
    const next = Math.min(...this.due.values());
    this.timer = setTimeout(() => void this.round(), Math.max(MIN_WAIT_MS, next - now()));
    this.timer.unref(); // a keeper alone does not keep the process running
  }

  private async refresh(entry: ImageEntry): Promise<void> {
    const { reads, upstreams, index, log } = this.options;
    let images: string[];
    try {
      images = await this.imagesOf(entry);
    } catch (error) {
      log.warn("pinned image not refreshed: its tags could not be listed; what it pinned stays pinned", { pin: entry.text, error: (error as Error).message });
      return;
    }
    const digests: string[] = [];
    let failed = false;
    for (const image of images) {
      try {
        // Pinned as they come, before each is fetched: a full cache's eviction cannot take them meanwhile.
        const fetching = (digest: string) => index.pin(entry.text, [digest], false);
        for await (const step of prewarm(reads, upstreams, image, entry.platforms, { index, fetching })) {
          digests.push(step.digest);
          fetching(step.digest);
        }
      } catch (error) {
        failed = true;
        log.warn("pinned image not refreshed; what it pinned stays pinned", { pin: entry.text, image, error: (error as Error).message });
      }
    }
    index.pin(entry.text, digests, !failed);
    log.debug("pinned", { pin: entry.text, images: images.length, entries: digests.length });
  }

  /** The concrete images an entry stands for now. */
  private async imagesOf(entry: ImageEntry): Promise<string[]> {
    const { reads, upstreams, index } = this.options;
    const { registry, repository, reference } = entry;
    if (entry.repositoryGlob) {
      return index.tags(CACHED_TAGS_SCANNED).flatMap((cached) => {
        const host = upstreams.byName(cached.upstream)?.registry;
        return host && entryMatches(entry, host, cached.repository, cached.tag) ? [imageReference(host, cached.repository, cached.tag)] : [];
      });
    }
    if (!entry.tagGlob) return [imageReference(registry, repository, reference)];
    const response = await reads.answer(ownRead(upstreams, registry, repository, "tags"));
    if (!response.ok) throw new Error(`the tag list answered ${response.status}`);
    const { tags } = (await response.json()) as { tags?: string[] | null };
    return (tags ?? []).filter((tag) => tagMatches(entry, tag)).map((tag) => imageReference(registry, repository, tag));
  }
}

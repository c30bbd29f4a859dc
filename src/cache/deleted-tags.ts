/**
 * `[cache] keep_deleted`: a tag the upstream deleted (or whose repository it
 * deleted) keeps answering with the manifest docxy last saw for it, marked so
 * that nobody mistakes it for the upstream's word.
 *
 * The mark is RFC 7234 §5.5's `Warning: 110` ("Response is Stale"), the same
 * code an answer served during an outage carries, with a text that says why:
 * a person reading `curl -I` or a client's debug log learns the upstream no
 * longer has it. The log says so once per tag and process, not once per pull:
 * a deleted base image may be pulled thousands of times a day.
 */
import type { Logger } from "../observability/logger";
import type { TagKey } from "./shared-knowledge";

/** Tags remembered as already logged; past it the memory starts over (one more line per tag, no growth). */
const LOGGED_MAX = 10_000;

export class DeletedTags {
  private readonly logged = new Set<string>();

  constructor(private readonly log: Logger) {}

  /** The Warning header value for `key`'s kept answer. */
  warning(registry: string, key: TagKey): string {
    return `110 docxy "Response is Stale: ${registry}/${key.repository}:${key.tag} is no longer in the upstream"`;
  }

  /** Logs, the first time only, that `key` is answered from the cache although the upstream deleted it. */
  kept(key: TagKey, digest: string): void {
    const id = `${key.upstream}/${key.repository}:${key.tag}`;
    if (this.logged.has(id)) return;
    if (this.logged.size >= LOGGED_MAX) this.logged.clear();
    this.logged.add(id);
    this.log.warn("tag deleted upstream, serving the cached manifest (cache.keep_deleted)", {
      upstream: key.upstream,
      repository: key.repository,
      tag: key.tag,
      digest,
    });
  }
}

/**
 * Upstream fallbacks (issue 19): other origins serving the same content as an
 * upstream (mirror.gcr.io for Docker Hub's popular public images), asked in
 * order when the upstream itself is in trouble — unreachable, too slow, or
 * answering 429 or a 5xx — for the pull path's manifest, blob and tag
 * requests (proxy/pass-through.ts `fetch`, the one place they all go out).
 *
 * What is never handed to a fallback, and why:
 * - A 401, 403 or 404 from the upstream. Those are real answers, not an
 *   outage: a private image must not be served from a mirror because its
 *   owner refused the client, and a 404 means the content is not there (a
 *   mirror holding an older tag or a deleted image would resurrect it).
 * - The client's credentials. They were issued for the upstream (by its
 *   realm, through docxy's token proxy); sending them to a third party would
 *   leak them. A fallback is asked as docxy: its own realm, discovered from
 *   its own `/v2/` challenge, anonymous or with the fallback's configured
 *   account (upstream-auth.ts, keyed by the fallback's own name).
 *
 * Content from a fallback is verified exactly like the upstream's: the blob
 * cache hashes every fill against the digest (cache/fill.ts) and the manifest
 * cache checks the digest asked for or the Docker-Content-Digest announced
 * (cache/manifest-cache.ts); nothing here trusts a fallback more.
 * Tests: tests/upstream/fallbacks.test.ts in process against real registries,
 * tests/integration/upstream/fallbacks.test.ts through the binary.
 */
import type { Config, FallbackEntry } from "../config/schema";
import { RegistryError } from "../oci/errors";
import { accountsFrom, type Account } from "./accounts";
import { BUILTIN_UPSTREAMS } from "./builtins";
import { discard, type UpstreamResponse } from "./client";
import type { Upstream, UpstreamTable } from "./table";
import { TroubledUpstreams } from "./troubled-upstreams";

/** Told which origin answered each pull-path request, and how each fallback try went, for metrics. */
export interface FallbackObserver {
  /** `source` is the host of the origin whose answer was used (the upstream's own, or a fallback's). */
  answered(upstream: string, source: string): void;
  /** A fallback was asked: it `served`, or `failed` (unreachable, trouble, or no such content). */
  tried(upstream: string, source: string, outcome: "served" | "failed"): void;
}

export interface Served {
  result: UpstreamResponse;
  /** The origin that answered: the upstream itself or one of its fallbacks. */
  source: Upstream;
}

/**
 * The upstream a fallback URL stands for: the same registry and repository
 * names (`library/` included), its own name, so that its token service and
 * tokens are learnt and cached apart from the upstream's.
 */
export function fallbackUpstream(primary: Omit<Upstream, "fallbacks">, url: string): Upstream {
  const trimmed = url.trim().replace(/\/+$/, "");
  // Docker Hub as a fallback (behind an internal mirror) needs its written-out realm, as as a primary.
  const builtin = BUILTIN_UPSTREAMS.find((b) => b.url === trimmed);
  return {
    name: fallbackName(primary.name, trimmed),
    registry: primary.registry,
    url: trimmed,
    hosts: [],
    authRealm: builtin?.authRealm,
    authService: builtin?.authService,
    autoLibraryPrefix: primary.autoLibraryPrefix,
    publicBaseUrl: primary.publicBaseUrl,
    allowPrivateRedirects: primary.allowPrivateRedirects,
    // A fallback leaves the network the way its primary does.
    proxy: primary.proxy,
  };
}

/** The name a fallback's accounts and tokens are kept under: never an upstream's (not a valid upstream name). */
export function fallbackName(primary: string, url: string): string {
  return `${primary} fallback ${new URL(url).host}`;
}

/**
 * The accounts configured for fallbacks (`{ url, credentials }` entries), under
 * each fallback's own name; a secret that cannot be read throws, naming the key.
 */
export function fallbackAccounts(config: Config, table: UpstreamTable, env: Record<string, string | undefined>): [string, Account[]][] {
  const { registry } = config;
  const lists: [string, string, FallbackEntry[]][] =
    registry.upstreams.length > 0
      ? registry.upstreams.map((entry, i) => [entry.name, `registry.upstreams[${i}].fallbacks`, entry.fallbacks ?? []])
      : [[registry.default, "registry.fallbacks", registry.fallbacks]];
  return lists.flatMap(([name, key, entries]) =>
    entries.flatMap((entry, j): [string, Account[]][] => {
      if (typeof entry === "string" || !entry.credentials?.length) return [];
      const fallback = table.byName(name)?.fallbacks?.[j];
      return fallback ? [[fallback.name, accountsFrom(entry.credentials, `${key}[${j}].credentials`, env)]] : [];
    }),
  );
}

export class Fallbacks {
  constructor(
    private readonly observer?: FallbackObserver,
    /** Upstreams whose fallbacks are asked first for a while after their trouble (the circuit breaker). */
    private readonly troubled = new TroubledUpstreams(),
  ) {}

  /**
   * `ask(origin)` for the upstream, then for each fallback in order while the
   * answer so far is trouble. A fallback's answer is used only when it is not
   * an error (< 400); otherwise the upstream's own trouble is what the client
   * hears (a mirror's 404 says nothing about the upstream's content). An
   * upstream in trouble a moment ago is asked after its fallbacks instead
   * (troubled-upstreams.ts), and only if none of them had the content.
   */
  async fetch(upstream: Upstream, ask: (origin: Upstream) => Promise<UpstreamResponse>, signal?: AbortSignal): Promise<Served> {
    if (!upstream.fallbacks?.length) return this.served(upstream, upstream, await ask(upstream));
    const fallbacksFirst = this.troubled.skips(upstream.name);
    if (fallbacksFirst) {
      const early = await this.fromFallbacks(upstream, ask, signal);
      if (early) return early;
    }
    let trouble: UpstreamResponse | undefined;
    let failure: unknown;
    try {
      const result = await ask(upstream);
      if (!isTrouble(result.response.status)) {
        this.troubled.answered(upstream.name);
        return this.served(upstream, upstream, result);
      }
      this.troubled.inTrouble(upstream.name, result.response.headers.get("retry-after"));
      trouble = result;
    } catch (error) {
      if (!isOutage(error) || signal?.aborted) {
        this.troubled.gaveUp(upstream.name);
        throw error;
      }
      this.troubled.inTrouble(upstream.name);
      failure = error;
    }
    const late = fallbacksFirst ? undefined : await this.fromFallbacks(upstream, ask, signal, trouble);
    if (late) return late;
    if (trouble) return this.served(upstream, upstream, trouble);
    throw failure;
  }

  /** The first fallback's answer below 400, or undefined; `trouble` (the upstream's) is discarded when one serves. */
  private async fromFallbacks(
    upstream: Upstream,
    ask: (origin: Upstream) => Promise<UpstreamResponse>,
    signal: AbortSignal | undefined,
    trouble?: UpstreamResponse,
  ): Promise<Served | undefined> {
    for (const fallback of upstream.fallbacks ?? []) {
      if (signal?.aborted) break;
      const host = new URL(fallback.url).host;
      try {
        const result = await ask(fallback);
        if (result.response.status < 400) {
          if (trouble) await discard(trouble.response);
          this.observer?.tried(upstream.name, host, "served");
          return this.served(upstream, fallback, result);
        }
        await discard(result.response);
      } catch (error) {
        // Our client left: nobody to answer. Anything but a registry error is a bug, not an outage.
        if (!(error instanceof RegistryError) || signal?.aborted) {
          if (trouble) await discard(trouble.response);
          throw error;
        }
      }
      this.observer?.tried(upstream.name, host, "failed");
    }
    return undefined;
  }

  private served(upstream: Upstream, source: Upstream, result: UpstreamResponse): Served {
    this.observer?.answered(upstream.name, new URL(source.url).host);
    return { result, source };
  }
}

/** An answer meaning the upstream is in trouble, not that the content is missing or refused. */
export function isTrouble(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * A failure meaning the upstream could not be asked: unreachable, timed out,
 * a redirect it may not make, its token service unreachable (upstream/client.ts
 * throws these as UNAVAILABLE). A refusal of docxy's account (DENIED) is an
 * answer, like a 401.
 */
export function isOutage(error: unknown): boolean {
  return error instanceof RegistryError && error.ociCode === "UNAVAILABLE";
}

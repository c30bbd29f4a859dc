/**
 * The cache assembled in process, part for part as cache/open-cache.ts
 * assembles it, in front of the real test registry (startUpstream: token
 * auth, blob redirects to a CDN that logs every request). The remote and the
 * store are the real PassThrough and FsStorage inside counting wrappers, so
 * a test asserts what a scenario cost: upstream requests, store opens and
 * commits. The store wrapper can also refuse new temp blobs, as a full or
 * read-only disk does.
 */
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialMemory } from "../../../src/auth/credential-memory";
import { AccessGate } from "../../../src/cache/access-gate";
import { BlobCache } from "../../../src/cache/blob-cache";
import type { BlobStorage, StoredBlob, TempBlob } from "../../../src/cache/blob-storage";
import { CacheFront } from "../../../src/cache/cache-front";
import { DeletedTags } from "../../../src/cache/deleted-tags";
import { Evictor } from "../../../src/cache/eviction";
import { FillLimits } from "../../../src/cache/fill-limits";
import { FsStorage } from "../../../src/cache/fs-storage";
import { OffThreadHashing } from "../../../src/cache/hashing-thread";
import { LocalCoordination } from "../../../src/cache/local-coordination";
import { ManifestCache } from "../../../src/cache/manifest-cache";
import type { PresignedRedirects } from "../../../src/cache/presigned-redirects";
import type { FetchOverride, Remote } from "../../../src/cache/remote";
import { SqliteIndex } from "../../../src/cache/sqlite-index";
import { createLogger } from "../../../src/observability/logger";
import { PassThrough } from "../../../src/proxy/pass-through";
import type { PullKind } from "../../../src/oci/paths";
import type { PullRequest, UpstreamIdentity } from "../../../src/proxy/pull-request";
import { AuthDiscovery } from "../../../src/upstream/auth-discovery";
import { UpstreamClient, type UpstreamResponse } from "../../../src/upstream/client";
import type { Upstream as UpstreamEntry } from "../../../src/upstream/table";
import { UpstreamAuth } from "../../../src/upstream/upstream-auth";
import { startUpstream, type Upstream } from "../upstream";

export interface UpstreamCall {
  /** "fetch" (the cache asked for something) or "forward" (the request was passed through). */
  kind: "fetch" | "forward";
  method: string;
  path: string;
  /** The Range that went upstream. */
  range: string | null;
}

/** The real remote, recording every request the cache makes of it. */
export class CountingRemote implements Remote {
  readonly calls: UpstreamCall[] = [];
  private held: Promise<void> | undefined;

  constructor(private readonly inner: Remote) {}

  /** The next GET waits until the returned function is called: a fill whose upstream request is still on its way. */
  holdNextGet(): () => void {
    let open!: () => void;
    this.held = new Promise((resolve) => (open = resolve));
    return open;
  }

  async fetch(request: PullRequest, override: FetchOverride = {}): Promise<UpstreamResponse> {
    const method = override.method ?? request.method;
    const range = override.withoutRange ? null : request.headers.get("range");
    this.calls.push({ kind: "fetch", method, path: pathOf(request, override.reference), range });
    const held = method === "GET" ? this.held : undefined;
    if (held) {
      this.held = undefined;
      await held;
    }
    return this.inner.fetch(request, override);
  }

  relay(request: PullRequest, answer: UpstreamResponse): Promise<Response> {
    return this.inner.relay(request, answer);
  }

  forward(request: PullRequest): Promise<Response> {
    this.calls.push({ kind: "forward", method: request.method, path: pathOf(request), range: request.headers.get("range") });
    return this.inner.forward(request);
  }

  upstreamName(request: PullRequest): string {
    return this.inner.upstreamName(request);
  }

  /** Calls for `reference` (a digest or tag), of `method` when given. */
  callsFor(reference: string, method?: string): UpstreamCall[] {
    return this.calls.filter((call) => call.path.endsWith(`/${reference}`) && (method === undefined || call.method === method));
  }
}

/** The real filesystem store, counting opens, temp blobs and commits; `refuseWrites` makes `begin` fail like a full disk. */
export class CountingStorage implements BlobStorage {
  opens = 0;
  begins = 0;
  readonly commits: string[] = [];
  refuseWrites = false;

  constructor(private readonly inner: BlobStorage) {}

  get shared(): boolean | undefined {
    return this.inner.shared;
  }

  open(digest: string): Promise<StoredBlob | undefined> {
    this.opens++;
    return this.inner.open(digest);
  }

  async begin(digest?: string): Promise<TempBlob> {
    this.begins++;
    if (this.refuseWrites) throw new Error("ENOSPC: no space left on device (refused by the test)");
    const temp = await this.inner.begin(digest);
    return {
      write: (chunk) => temp.write(chunk),
      read: (position, length) => temp.read(position, length),
      commit: async (digest) => {
        await temp.commit(digest);
        this.commits.push(digest);
      },
      abort: () => temp.abort(),
    };
  }

  delete(digest: string): Promise<void> {
    return this.inner.delete(digest);
  }

  list(): AsyncIterable<{ digest: string; size: number }> {
    return this.inner.list();
  }
}

export interface InProcessCache {
  front: CacheFront;
  blobs: BlobCache;
  manifests: ManifestCache;
  gate: AccessGate;
  index: SqliteIndex;
  storage: CountingStorage;
  remote: CountingRemote;
  coordination: LocalCoordination;
  /** A read of `name`'s `kind`/`reference`, as the HTTP layer would hand it on. */
  request(kind: PullKind, name: string, reference: string | undefined, init?: RequestInit): PullRequest;
  close(): void;
}

/** Where the upstream is: the test registry (startUpstream), or a fake one given the same keys. */
export type UpstreamAt = Pick<Upstream, "registryUrl" | "realm" | "service">;

export interface InProcessOptions {
  continueWithoutReaders?: boolean;
  tagTtlMs?: number;
  /** The store inside the counting wrapper, given the cache's own temp directory; default FsStorage there. */
  storage?: (dir: string) => Promise<BlobStorage>;
  /** Blob hits read from a bucket answer 307 to a presigned URL (`[cache.s3] presigned_redirect`). */
  presigned?: PresignedRedirects;
  /** `[cache] keep_deleted`: tags and content the upstream deleted stay served from the cache. */
  keepDeleted?: boolean;
  /** Receives the cache's log lines from warn up (none are kept otherwise). */
  log?: (line: string) => void;
}

/**
 * What most in-process cache tests share for the whole file: the real registry, reachable only
 * through docxy, and one cache in front of it; `started` receives both once they are up.
 */
export function inProcessSuite(started: (parts: { upstream: Upstream; cache: InProcessCache }) => void, options: InProcessOptions = {}): void {
  let upstream: Upstream | undefined;
  let cache: InProcessCache | undefined;
  beforeAll(async () => {
    upstream = await startUpstream({ onlyThroughProxy: true });
    cache = await inProcessCache(upstream, options);
    started({ upstream, cache });
  }, 120_000);
  afterAll(async () => {
    cache?.close();
    await upstream?.stop();
  });
}

export async function inProcessCache(upstream: UpstreamAt, options: InProcessOptions = {}): Promise<InProcessCache> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-in-process-"));
  const remote = countingPassThrough();
  const storage = new CountingStorage(await (options.storage ?? FsStorage.open)(dir));
  const index = SqliteIndex.open(join(dir, "index.sqlite"));
  const coordination = new LocalCoordination();
  const gate = new AccessGate(index, remote, new CredentialMemory(), undefined, options.keepDeleted);
  const log = options.log ? createLogger("warn", options.log) : createLogger("error", () => undefined);
  let blobs: BlobCache | undefined;
  const evictor = new Evictor({ index, storage, coordination, inUse: (digest) => blobs?.inUse(digest) ?? false });
  const limits = new FillLimits({ maxFills: 64, maxFillsPerClient: 64, maxFillBytes: 2 ** 40 });
  const hashing = new OffThreadHashing(); // as open-cache.ts hashes fills: on a worker thread
  blobs = new BlobCache({
    ...{ storage, index, remote, coordination, gate, evictor, limits, log, hashing },
    continueWithoutReaders: options.continueWithoutReaders ?? true,
    presigned: options.presigned,
  });
  const deleted = options.keepDeleted ? new DeletedTags(log) : undefined;
  const manifests = new ManifestCache(storage, index, remote, gate, () => options.tagTtlMs ?? 60_000, undefined, deleted);
  return {
    ...readsOf(upstream),
    front: new CacheFront(blobs, manifests, remote),
    blobs,
    manifests,
    gate,
    index,
    storage,
    remote,
    coordination,
    close() {
      hashing.close();
      index.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The real pass-through as docxy builds it (no upstream accounts), counted. */
export function countingPassThrough(): CountingRemote {
  const client = new UpstreamClient({ headerMs: 10_000, idleMs: 30_000, maxRedirects: 5 }, "docxy/test");
  const discovery = new AuthDiscovery(client, 10_000);
  return new CountingRemote(new PassThrough(client, discovery, new UpstreamAuth(client, discovery, new Map())));
}

/** Reads of `upstream` (docxy's default upstream) as the HTTP layer hands them on: as the client when it sends a token, else as docxy. */
export function readsOf(upstream: UpstreamAt): Pick<InProcessCache, "request"> {
  const route = { upstream: upstreamEntry(upstream), via: "default" as const };
  return {
    request(kind, name, reference, init = {}) {
      const headers = new Headers(init.headers);
      const identity: UpstreamIdentity = headers.has("authorization") ? "client" : "proxy";
      return {
        path: { name, kind, reference },
        identity,
        method: (init.method ?? "GET") as "GET" | "HEAD",
        query: new URLSearchParams(),
        headers,
        route,
        origin: "http://docxy.test",
        client: "127.0.0.1",
      };
    },
  };
}

/** The test registry as docxy's default upstream, Docker Hub's slot. */
export function upstreamEntry(upstream: UpstreamAt): UpstreamEntry {
  return {
    name: "dockerhub",
    registry: "docker.io",
    url: upstream.registryUrl,
    hosts: [],
    autoLibraryPrefix: false,
    authRealm: upstream.realm,
    authService: upstream.service,
  };
}

function pathOf(request: PullRequest, reference = request.path.reference): string {
  const tail = request.path.kind === "tags" ? "tags/list" : `${request.path.kind}/${reference}`;
  return `/v2/${request.path.name}/${tail}`;
}

/** The body's sha256 and length, read as it streams. */
export async function digestOf(response: Response): Promise<{ digest: string; length: number }> {
  const hasher = new Bun.CryptoHasher("sha256");
  let length = 0;
  for await (const chunk of response.body ?? []) {
    hasher.update(chunk);
    length += chunk.length;
  }
  return { digest: `sha256:${hasher.digest("hex")}`, length };
}

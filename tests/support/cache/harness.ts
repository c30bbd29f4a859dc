/**
 * docxy with its cache in a directory the test owns (`DOCXY_CACHE_DIR`), so
 * tests can look at what was committed, restart docxy on the same cache, or
 * point it at something unusable; plus small helpers for cache assertions.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { removeAtExit } from "../cleanup";
import { startDocxy, type Docxy } from "../docxy-process";
import type { Upstream } from "../upstream";

export interface CachingDocxy extends Docxy {
  /** the cache directory (DOCXY_CACHE_DIR) */
  cacheDir: string;
}

export function newCacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "docxy-cache-test-"));
  removeAtExit(dir);
  return join(dir, "cache");
}

export { registryToml } from "../upstream";

/** docxy with `config` (TOML) and its cache at `cacheDir` (a new one by default). */
export async function startCachingDocxy(config: string, options: { cacheDir?: string; env?: Record<string, string> } = {}): Promise<CachingDocxy> {
  const cacheDir = options.cacheDir ?? newCacheDir();
  const docxy = await startDocxy({ config, env: { DOCXY_CACHE_DIR: cacheDir, ...options.env } });
  return { ...docxy, cacheDir };
}

/** Where docxy's filesystem storage keeps a committed blob (src/cache/fs-storage.ts). */
export function cachedBlobPath(cacheDir: string, digest: string): string {
  return join(cacheDir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
}

export function isCached(cacheDir: string, digest: string): boolean {
  return existsSync(cachedBlobPath(cacheDir, digest));
}

/** Fills in progress (or left by a crash). */
export function tempFiles(cacheDir: string): string[] {
  const dir = join(cacheDir, "tmp");
  return existsSync(dir) ? readdirSync(dir) : [];
}

export function sha256(bytes: ArrayBuffer | Uint8Array): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

/** The whole body, or how far it got before the connection broke. */
export async function readFully(response: Response): Promise<{ bytes: Uint8Array; error?: Error }> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  let error: Error | undefined;
  try {
    for await (const chunk of response.body!) {
      chunks.push(chunk);
      length += chunk.length;
    }
  } catch (caught) {
    error = caught instanceof Error ? caught : new Error(String(caught));
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return error ? { bytes, error } : { bytes };
}

/** Polls `condition` until it holds; for effects docxy applies after a response ends (eviction). */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A token from docxy's own token endpoint, as a client gets it. */
export async function docxyToken(docxyUrl: string, repository: string, authorization?: string): Promise<string> {
  const response = await fetch(`${docxyUrl}/auth/dockerhub/token?scope=${encodeURIComponent(`repository:${repository}:pull`)}`, {
    headers: authorization ? { authorization } : {},
  });
  if (response.status !== 200) throw new Error(`token for ${repository}: ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

/** Access-log lines of the real registry matching `pattern`. */
export function registryLines(upstream: Upstream, pattern: RegExp): string[] {
  return readFileSync(upstream.registryLog, "utf8")
    .split("\n")
    .filter((line) => pattern.test(line));
}

/**
 * Makes sure the registry has logged everything sent before now: requests a
 * unique marker path and waits for its line. Absence of a line is then proof.
 */
export async function registryLogSettled(upstream: Upstream): Promise<void> {
  const marker = `/v2/marker/m${crypto.randomUUID().slice(0, 8)}/tags/list`;
  await (await fetch(`${upstream.registryUrl}${marker}`)).arrayBuffer();
  await waitFor(() => registryLines(upstream, new RegExp(marker)).length > 0, "the registry's access log");
}

export const ALL_MANIFESTS = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

export interface StreamingGet {
  /** status and lower-case headers, once the head has arrived */
  head: Promise<{ status: number; headers: Record<string, string> }>;
  /** body bytes received so far */
  received(): number;
  /** stop reading (TCP back-pressure reaches docxy) / read on */
  pause(): void;
  resume(): void;
  /** resolves once `n` body bytes have arrived (or the connection ended) */
  atLeast(n: number): Promise<void>;
  /** the connection closed: the body's digest and length (hashed as it streamed, never buffered) */
  done: Promise<{ digest: string; length: number }>;
  destroy(): void;
}

/**
 * A GET over a raw socket whose reading the test controls, for a client that
 * is slow or stalls mid-body. The body is hashed on the fly.
 */
export function streamingGet(url: string, headers: Record<string, string> = {}): StreamingGet {
  const target = new URL(url);
  const socket = connect(Number(target.port), target.hostname);
  const hasher = new Bun.CryptoHasher("sha256");
  let head = Buffer.alloc(0);
  let headDone = false;
  let length = 0;
  let waiters: { n: number; resolve: () => void }[] = [];
  let resolveHead!: (h: { status: number; headers: Record<string, string> }) => void;
  let rejectHead!: (e: Error) => void;
  const headPromise = new Promise<{ status: number; headers: Record<string, string> }>((res, rej) => ((resolveHead = res), (rejectHead = rej)));
  const wake = (all = false) => {
    waiters = waiters.filter((w) => (all || length >= w.n ? (w.resolve(), false) : true));
  };
  const body = (chunk: Buffer) => {
    hasher.update(chunk);
    length += chunk.length;
    wake();
  };
  socket.on("connect", () => {
    const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `host: ${target.host}`, "connection: close"];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  });
  socket.on("data", (chunk: Buffer) => {
    if (headDone) return body(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf("\r\n\r\n");
    if (end < 0) return;
    headDone = true;
    const [statusLine, ...lines] = head.subarray(0, end).toString("latin1").split("\r\n");
    const parsed: Record<string, string> = {};
    for (const line of lines) {
      const at = line.indexOf(":");
      parsed[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    }
    resolveHead({ status: Number(statusLine!.split(" ")[1]), headers: parsed });
    if (head.length > end + 4) body(head.subarray(end + 4));
  });
  socket.on("error", () => socket.destroy());
  const done = new Promise<{ digest: string; length: number }>((resolve) =>
    socket.on("close", () => {
      if (!headDone) rejectHead(new Error("connection closed before the response head"));
      wake(true);
      resolve({ digest: `sha256:${hasher.digest("hex")}`, length });
    }),
  );
  return {
    head: headPromise,
    received: () => length,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    atLeast: (n) => (length >= n || socket.closed ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    done,
    destroy: () => socket.destroy(),
  };
}

/**
 * dist/docxy under test (through tests/support's startDocxy), with its cache
 * in a temp dir of its own: every start is a cold cache, and a running
 * instance is the warm one, unless it is started on the cache a stopped one
 * kept. Its defaults are kept apart from the upstream.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { removeAtExit } from "../../tests/support/cleanup";
import { startDocxy, type Docxy } from "../../tests/support/docxy-process";
import type { Upstream } from "../../tests/support/upstream";

export interface BenchDocxy extends Docxy {
  cacheDir: string;
  /** a Bearer token from docxy's own token endpoint, as clients get it */
  token(repository: string): Promise<string>;
  isCached(digest: string): boolean;
  /** Stops the process; its cache is removed unless `keepCache`, for a new instance to start on. */
  stop(options?: { keepCache?: boolean }): Promise<void>;
}

/**
 * `registryUrl` replaces the upstream's registry (same token service), e.g. the WAN-rate one;
 * `config` is TOML appended after the `[registry]` section (e.g. a `[fleet]` one).
 */
export async function startBenchDocxy(
  upstream: Upstream,
  options: { args?: string[]; env?: Record<string, string>; registryUrl?: string; cacheDir?: string; config?: string } = {},
): Promise<BenchDocxy> {
  const cacheDir = options.cacheDir ?? join(mkdtempSync(join(tmpdir(), "docxy-bench-cache-")), "cache");
  const dir = dirname(cacheDir);
  removeAtExit(dir);
  const docxy = await startDocxy({
    config: `[registry]\nupstream_registry = "${options.registryUrl ?? upstream.registryUrl}"\nauth_realm = "${upstream.realm}"\nauth_service = "${upstream.service}"\n${options.config ?? ""}`,
    env: { DOCXY_CACHE_DIR: cacheDir, ...options.env },
    args: options.args,
  });
  return {
    ...docxy,
    cacheDir,
    async token(repository) {
      const res = await fetch(`${docxy.url}/auth/dockerhub/token?scope=${encodeURIComponent(`repository:${repository}:pull`)}`);
      if (res.status !== 200) throw new Error(`docxy token for ${repository}: HTTP ${res.status}`);
      return `Bearer ${((await res.json()) as { token: string }).token}`;
    },
    isCached: (digest) => existsSync(join(cacheDir, "blobs", "sha256", digest.replace(/^sha256:/, ""))),
    async stop(stopOptions) {
      await docxy.stop();
      if (!stopOptions?.keepCache) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** VmRSS, VmHWM (its peak) and RssAnon (its heap and buffers, without mapped files) of a process, in bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; hwm: number; anon: number }> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM"), anon: kb("RssAnon") };
}

/** Polls until `condition` holds. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

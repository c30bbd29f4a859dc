// Runs Debian's `docker-registry` (CNCF distribution 2.8.2) as a child process on a free
// loopback port, with or without token auth and the CDN-style redirect middleware.
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

/** stdin is our end of the watchdog pipe; stdout/stderr go to the log file descriptor */
type RegistryChild = Subprocess<"pipe", number, number>;
import { freePort } from "./ports";

export const REGISTRY_BIN = process.env.DOCXY_REGISTRY_BIN ?? "/usr/bin/docker-registry";

export interface RegistryOptions {
  /** a short name for the config and log files in workDir */
  name: string;
  workDir: string;
  rootDir: string;
  /** token auth (protocol.md §6.1); without it the registry is open, for seeding */
  auth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** CDN origin for the `redirect` storage middleware: blob GET/HEAD then answer 307 */
  redirectTo?: string;
}

export interface RegistryProcess {
  url: string; // origin, no trailing slash
  logFile: string;
  stop(): Promise<void>;
}

const live = new Set<RegistryChild>();
let exitHookInstalled = false;

// Best effort for plain `bun script.ts` runs: kill registries still up when the process exits.
// Bun does not kill its children itself (verified on 1.4.5), and under `bun test` exit handlers
// do not run at all, so the watchdog below is what really guarantees no registry outlives us.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const proc of live) proc.kill("SIGKILL");
  });
}

function configFor(opts: RegistryOptions, port: number): object {
  // JSON is valid YAML, and spares us quoting paths and URLs.
  const config: Record<string, unknown> = {
    version: "0.1",
    log: { level: "info", formatter: "text", accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: opts.rootDir },
      maintenance: { uploadpurging: { enabled: false } },
      // Tests that take content away upstream (cache.keep_deleted) DELETE manifests; nothing else sends DELETE.
      delete: { enabled: true },
    },
    http: { addr: `127.0.0.1:${port}`, secret: "docxy-test-secret" }, // a fixed secret avoids a warning
  };
  if (opts.auth) {
    const { realm, service, issuer, rootCertBundle } = opts.auth;
    config.auth = { token: { realm, service, issuer, rootcertbundle: rootCertBundle } };
  }
  if (opts.redirectTo) {
    config.middleware = { storage: [{ name: "redirect", options: { baseurl: opts.redirectTo } }] };
  }
  return config;
}

// The registry becomes the shell's own pid (exec), so kill() reaches it directly; a watchdog
// sibling holds the read end of our stdin pipe and SIGTERMs it when that pipe closes. The pipe
// closes when stop() ends it, or when this process dies in any way (even SIGKILL), so no
// registry outlives a crashed test run.
export const WATCHDOG = 'exec 3<&0; (cat <&3 >/dev/null; kill -TERM $$ 2>/dev/null) & exec "$@" 3<&-';

async function waitReady(url: string, proc: RegistryChild, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return true;
    } catch {
      // not listening yet
    }
    await Bun.sleep(25);
  }
  throw new Error(`docker-registry at ${url} not ready after ${timeoutMs} ms`);
}

async function stopProcess(proc: RegistryChild): Promise<void> {
  if (!live.delete(proc)) return;
  await proc.stdin.end(); // the watchdog sees EOF and sends SIGTERM
  const timedOut = await Promise.race([proc.exited.then(() => false), Bun.sleep(3000).then(() => true)]);
  if (timedOut) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

export async function startRegistry(opts: RegistryOptions): Promise<RegistryProcess> {
  installExitHook();
  const configFile = join(opts.workDir, `${opts.name}.config.yml`);
  const logFile = join(opts.workDir, `${opts.name}.log`);
  // freePort() can race with another process; retry a few times on a bind failure.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(configFile, JSON.stringify(configFor(opts, port), null, 2));
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0; // judge only this attempt's output
    const fd = openSync(logFile, "a");
    let proc: RegistryChild;
    try {
      proc = Bun.spawn(["sh", "-c", WATCHDOG, "sh", REGISTRY_BIN, "serve", configFile], {
        stdin: "pipe",
        stdout: fd,
        stderr: fd,
      });
    } finally {
      closeSync(fd);
    }
    live.add(proc);
    const url = `http://127.0.0.1:${port}`;
    const ready = await waitReady(url, proc, 15_000).catch(async (err) => {
      await stopProcess(proc);
      throw err;
    });
    if (ready) return { url, logFile, stop: () => stopProcess(proc) };
    await stopProcess(proc);
    const log = readFileSync(logFile).subarray(logStart).toString("utf8");
    if (!/address already in use/.test(log) || attempt >= 5) {
      throw new Error(`docker-registry exited early (code ${proc.exitCode}); log ${logFile}:\n${log.slice(-2000)}`);
    }
  }
}

/**
 * Running real clients and private daemons for the end-to-end suite.
 *
 * Daemons (dockerd, containerd) run under the WATCHDOG shell prefix from tests/support/registry.ts:
 * a sibling of the daemon holds our stdin pipe and SIGTERMs the daemon when that pipe closes,
 * which happens on stop() and also when this test process dies in any way (bun test runs no exit
 * handlers and does not kill its children). Every daemon gets its own temp dir for root, state and
 * sockets, so nothing on the machine (/var/lib/docker, /run/containerd, ~/.docker) is touched.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "../../support/cleanup";
import { WATCHDOG } from "../../support/registry";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  stdin?: string;
}

/** A minimal environment: clients must not pick up the developer's proxies, configs or credentials. */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NO_PROXY: "*", no_proxy: "*", ...extra };
}

/** Runs a client to completion (killed after timeoutMs) and captures its output. */
export async function run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = Bun.spawn(argv, {
    env: options.env ?? baseEnv(),
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { code: child.signalCode ? -1 : code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Like run(), but throws with the client's own output when it fails. */
export async function runOk(argv: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(argv, options);
  if (result.code !== 0) {
    throw new Error(`${argv.join(" ")} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`);
  }
  return result.stdout;
}

/**
 * A temp dir for one daemon or client. Short (under /tmp), because unix socket paths are limited
 * to 108 bytes and dockerd nests containerd's sockets a few levels deep under its exec-root.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join("/tmp", `docxy-e2e-${prefix}-`));
  removeAtExit(dir); // in case stop() never runs
  return dir;
}

/** Mount points at or under `dir` (dockerd bind-mounts its data-root onto itself), deepest first. */
export function mountsUnder(dir: string): string[] {
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)))
    // mountinfo escapes spaces etc. as \040; our paths have none.
    .sort((a, b) => b.length - a.length);
  return [...new Set(points)];
}

/** Unmounts what a daemon left under `dir` (lazily, so a busy mount cannot block the run), then deletes it. */
export async function removeDir(dir: string): Promise<void> {
  for (const point of mountsUnder(dir)) await run(["umount", "-l", point], { timeoutMs: 10_000 });
  rmSync(dir, { recursive: true, force: true });
}

/** True while `pid` exists and its command line mentions `marker` (guards against pid reuse). */
export function alive(pid: number, marker: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== "Z" && cmdline.includes(marker);
  } catch {
    return false;
  }
}

type DaemonChild = Subprocess<"pipe", number, number>;

export interface Daemon {
  pid: number;
  logFile: string;
  log(): string;
  /** SIGTERM through the watchdog, SIGKILL after graceMs; idempotent. */
  stop(graceMs?: number): Promise<void>;
}

export interface DaemonOptions {
  name: string;
  argv: string[];
  env?: Record<string, string>;
  /** where the log file goes */
  dir: string;
  /** resolves true once the daemon serves requests */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
}

/** Starts a daemon under WATCHDOG and waits until ready() says it serves. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const logFile = join(options.dir, `${options.name}.log`);
  const fd = openSync(logFile, "a");
  let child: DaemonChild;
  try {
    child = Bun.spawn(["sh", "-c", WATCHDOG, "sh", ...options.argv], {
      env: options.env ?? baseEnv(),
      stdin: "pipe",
      stdout: fd,
      stderr: fd,
    });
  } finally {
    closeSync(fd);
  }
  let stopped: Promise<void> | undefined;
  const daemon: Daemon = {
    pid: child.pid,
    logFile,
    log: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : ""),
    stop(graceMs = 20_000) {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        await child.stdin.end(); // the watchdog sees EOF and sends SIGTERM
        const timedOut = await Promise.race([child.exited.then(() => false), Bun.sleep(graceMs).then(() => true)]);
        if (timedOut) {
          child.kill("SIGKILL");
          await child.exited;
        }
      })();
      return stopped;
    },
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${options.name} exited early (${child.exitCode ?? child.signalCode}); log ${logFile}:\n${daemon.log().slice(-3000)}`);
    }
    if (await options.ready().catch(() => false)) return daemon;
    if (Date.now() > deadline) {
      await daemon.stop(5000);
      throw new Error(`${options.name} not ready after ${options.readyTimeoutMs ?? 60_000} ms; log ${logFile}:\n${daemon.log().slice(-3000)}`);
    }
    await Bun.sleep(100);
  }
}

/**
 * Runs the compiled `dist/docxy` binary — what users run — as a child
 * process on a loopback port it picks itself, with a config file written for
 * the test. Its log is kept so tests can assert on it (e.g. that no
 * credential ever appears there).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { removeAtExit } from "./cleanup";
import { WATCHDOG } from "./registry";

const ROOT = resolve(import.meta.dir, "../..");
export const DOCXY_BIN = process.env.DOCXY_BIN ?? join(ROOT, "dist/docxy");

export interface Docxy {
  /** The docxy process itself (the watchdog shell execs into it). */
  pid: number;
  /** e.g. http://127.0.0.1:41234: the plain-HTTP proxy listener if there is one, else the HTTPS one. */
  url: string;
  /** Every bound listener, by scheme and role. */
  listeners: { scheme: string; role: string; port: number }[];
  /** Everything the process wrote to stdout and stderr so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface DocxyOptions {
  /** TOML written to a temp file and passed with `-c`. */
  config?: string;
  args?: string[];
  env?: Record<string, string>;
}

let built: Promise<void> | undefined;

/** Builds the binary once per test process when it is missing (npm test always builds first). */
export function ensureBinary(): Promise<void> {
  built ??= existsSync(DOCXY_BIN)
    ? Promise.resolve()
    : Bun.spawn(["bun", "scripts/build.ts"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" }).exited.then((code) => {
        if (code !== 0) throw new Error("building dist/docxy failed");
      });
  return built;
}

export async function startDocxy(options: DocxyOptions = {}): Promise<Docxy> {
  await ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "docxy-test-"));
  removeAtExit(dir); // stop() removes it too; this covers a killed test run
  const args = [DOCXY_BIN, "--bind", "127.0.0.1", "--http-port", "0", ...(options.args ?? [])];
  if (options.config !== undefined) {
    await Bun.write(join(dir, "docxy.toml"), options.config);
    args.push("-c", join(dir, "docxy.toml"));
  }
  const child = Bun.spawn(["sh", "-c", WATCHDOG, "sh", ...args], {
    cwd: dir,
    stdin: "pipe",
    env: { PATH: process.env.PATH ?? "", NO_PROXY: "*", ...options.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);

  const stop = async () => {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await child.exited;
    await collected; // the last lines it wrote, e.g. its "stopping"
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 15_000;
  while (!output.includes("docxy started")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`docxy did not start (exit ${child.exitCode}):\n${output}`);
    }
    await Bun.sleep(20);
  }
  const listeners = [...output.matchAll(/msg=listening url=(\w+):\/\/[^ ]*:(\d+) role=(\w+)/g)].map((m) => ({
    scheme: m[1]!,
    port: Number(m[2]),
    role: m[3]!,
  }));
  const main = listeners.find((l) => l.role === "proxy" && l.scheme === "http") ?? listeners.find((l) => l.role === "proxy") ?? listeners[0]!;
  return { pid: child.pid, url: `${main.scheme}://127.0.0.1:${main.port}`, listeners, log: () => output, stop };
}

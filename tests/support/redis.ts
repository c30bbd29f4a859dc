// Runs Debian's redis-server (7.0) on a free loopback port, as the fleet's shared Redis
// (issue 16). Nothing is persisted (`--save "" --appendonly no`): a restart is an empty Redis,
// the worst case the fleet must survive (fleet.md §3: the client reconnects but silently loses
// its subscriptions, bun#33450).
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "./cleanup";
import { freePort } from "./ports";
import { WATCHDOG } from "./registry";

export const REDIS_BIN = "/usr/bin/redis-server";

export interface Redis {
  /** redis://127.0.0.1:PORT */
  url: string;
  /** SIGKILLs the server: clients see their connection drop mid-session. */
  kill(): Promise<void>;
  /** Starts a fresh, empty server on the same port (kills the running one first). */
  restart(): Promise<void>;
  /** Safe to call twice. */
  stop(): Promise<void>;
}

type Child = Subprocess<"pipe", number, number>;

export async function startRedis(): Promise<Redis> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-redis-"));
  removeAtExit(dir);
  let child: Child | undefined;
  let port = 0;
  const kill = async () => {
    if (child) await killChild(child);
    child = undefined;
  };
  try {
    // A port found free can be taken before redis binds it: then try another one.
    for (let attempt = 1; !child; attempt++) {
      port = await freePort();
      child = spawn(dir, port);
      if (await ready(port, child)) break;
      await kill();
      if (attempt >= 5) throw new Error(`redis-server did not start; its log:\n${logTail(dir)}`);
    }
  } catch (error) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    kill,
    async restart() {
      await kill();
      child = spawn(dir, port);
      if (!(await ready(port, child))) throw new Error(`redis-server did not restart on port ${port}; its log:\n${logTail(dir)}`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Under the watchdog (registry.ts): the server dies with this process, even on SIGKILL. */
function spawn(dir: string, port: number): Child {
  const fd = openSync(join(dir, "redis.log"), "a");
  try {
    const argv = [REDIS_BIN, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
    return Bun.spawn(["sh", "-c", WATCHDOG, "sh", ...argv], { stdin: "pipe", stdout: fd, stderr: fd });
  } finally {
    closeSync(fd);
  }
}

/** SIGKILL, then end the pipe so the orphaned watchdog exits now rather than when this process does. */
export async function killChild(child: Subprocess<"pipe", number, number>): Promise<void> {
  child.kill("SIGKILL");
  await child.exited;
  try {
    await child.stdin.end();
  } catch {
    // already ended
  }
}

/** True once the server answers PING; false if it exited (its port was taken). */
async function ready(port: number, child: Child): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    if (await ping(port)) return true;
    await Bun.sleep(10);
  }
  return false;
}

/** A raw PING: the probe must not depend on the client under test. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
  });
}

function logTail(dir: string): string {
  return readFileSync(join(dir, "redis.log"), "utf8").slice(-2000);
}

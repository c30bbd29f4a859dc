/**
 * Debian's nginx, run in the foreground on a prefix directory of its own
 * (`runNginx`), stopped by `stop()` or by the watchdog when the test process
 * dies. Used by the tests as a failing front of a registry (`startStatusNginx`)
 * and by the bench as its baselines (bench/lib/nginx.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "./cleanup";
import { freePort } from "./ports";
import { WATCHDOG } from "./registry";

export const NGINX_BIN = process.env.DOCXY_NGINX_BIN ?? "/usr/sbin/nginx";

/** Asked of every origin until each answers: nginx is up. Kept out of access logs that count. */
const READY_PATH = "/ready";

export interface RunningNginx {
  /** Its prefix: nginx.conf, the logs, the temp paths. */
  dir: string;
  stop(): Promise<void>;
}

/**
 * Starts nginx with `http(dir)` inside its `http {}` block (servers, logs) and
 * waits until each of `origins` answers anything at all.
 */
export async function runNginx(http: (dir: string) => string, origins: string[], options: { connections?: number } = {}): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-nginx-"));
  removeAtExit(dir);
  const conf = `
daemon off;
master_process on;
${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${options.connections ?? 256}; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http(dir)}
}
`;
  await Bun.write(join(dir, "nginx.conf"), conf);
  // The watchdog SIGTERMs nginx when our end of the pipe closes, also if this process dies.
  const proc: Subprocess<"pipe", "ignore", "pipe"> = Bun.spawn(["sh", "-c", WATCHDOG, "sh", NGINX_BIN, "-p", dir, "-c", join(dir, "nginx.conf")], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "pipe",
  });
  const stop = async () => {
    await proc.stdin.end();
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
    await proc.exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await Promise.all(origins.map((o) => fetch(`${o}${READY_PATH}`, { method: "HEAD" }).then(() => true, () => false)));
    if (up.every(Boolean)) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      const err = await new Response(proc.stderr).text().catch(() => "");
      const log = await Bun.file(join(dir, "error.log")).text().catch(() => "");
      await stop();
      throw new Error(`nginx did not start: ${err}${log}`);
    }
    await Bun.sleep(25);
  }
  return { dir, stop };
}

/**
 * nginx in front of an upstream registry, one loopback server per status:
 * `/v2/` is proxied to the registry (its version check and challenge stay
 * real), every other request is answered with that status, as a
 * rate-limiting or failing front of a registry does (Docker Hub's 429 is
 * registry JSON; a load balancer's 503 an HTML page). Its access log counts
 * what reached it.
 */
export interface StatusNginx {
  /** origin answering `status` (e.g. `urls[429]`) */
  urls: Record<number, string>;
  /** request lines ("GET /v2/acme/app/manifests/v1") nginx answered with a status of its own */
  answered(): string[];
  stop(): Promise<void>;
}

const BODIES: Record<number, { type: string; body: string }> = {
  429: { type: "application/json", body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit.","detail":null}]}' },
};

export async function startStatusNginx(target: string, statuses: number[]): Promise<StatusNginx> {
  const ports = await Promise.all(statuses.map(() => freePort()));
  const urls = Object.fromEntries(statuses.map((status, i) => [status, `http://127.0.0.1:${ports[i]}`]));
  const servers = (dir: string) =>
    statuses
      .map((status, i) => {
        const { type, body } = BODIES[status] ?? { type: "text/html", body: `<html><body><h1>${status}</h1></body></html>` };
        return `
  server {
    listen 127.0.0.1:${ports[i]};
    access_log ${dir}/answered.log answered;
    location = /v2/ { proxy_pass ${target}; access_log off; }
    location = ${READY_PATH} { access_log off; return 204; }
    location / { default_type ${type}; return ${status} '${body}'; }
  }`;
      })
      .join("\n");
  const { dir, stop } = await runNginx((dir) => `  log_format answered '$request';\n${servers(dir)}`, Object.values(urls));
  const answered = () =>
    readFileSync(join(dir, "answered.log"), "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => line.replace(/ HTTP\/[\d.]+$/, ""));
  return { urls, answered, stop };
}

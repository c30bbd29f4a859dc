/**
 * A real nginx (Debian's `nginx`) in front of an upstream registry, one
 * loopback server per status: `/v2/` is proxied to the registry (its version
 * check and challenge stay real), every other request is answered with that
 * status, as a rate-limiting or failing front of a registry does (Docker Hub's
 * 429 is registry JSON; a load balancer's 503 an HTML page). Its access log
 * counts what reached it. Stopped by `stop()`, or by the watchdog when the
 * test process dies.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "./cleanup";
import { freePort } from "./ports";
import { WATCHDOG } from "./registry";

export const NGINX_BIN = process.env.DOCXY_NGINX_BIN ?? "/usr/sbin/nginx";

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
  const dir = mkdtempSync(join(tmpdir(), "docxy-nginx-"));
  removeAtExit(dir);
  const ports = await Promise.all(statuses.map(() => freePort()));
  const servers = statuses.map((status, i) => {
    const { type, body } = BODIES[status] ?? { type: "text/html", body: `<html><body><h1>${status}</h1></body></html>` };
    return `
  server {
    listen 127.0.0.1:${ports[i]};
    access_log ${dir}/answered.log answered;
    location = /v2/ { proxy_pass ${target}; access_log off; }
    location / { default_type ${type}; return ${status} '${body}'; }
  }`;
  });
  const conf = `
daemon off;
master_process on;
${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  log_format answered '$request';
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${servers.join("\n")}
}
`;
  await Bun.write(join(dir, "nginx.conf"), conf);
  // The watchdog SIGTERMs nginx when our end of the pipe closes, also if this process dies.
  const proc: Subprocess<"pipe", "ignore", "pipe"> = Bun.spawn(["sh", "-c", WATCHDOG, "sh", NGINX_BIN, "-p", dir, "-c", join(dir, "nginx.conf")], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "pipe",
  });
  const urls = Object.fromEntries(statuses.map((status, i) => [status, `http://127.0.0.1:${ports[i]}`]));
  const stop = async () => {
    await proc.stdin.end();
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
    await proc.exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await Promise.all(Object.values(urls).map((u) => fetch(`${u}/ready`).then(() => true, () => false)));
    if (up.every(Boolean)) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      const err = await new Response(proc.stderr).text().catch(() => "");
      await stop();
      throw new Error(`nginx did not start: ${err}`);
    }
    await Bun.sleep(25);
  }
  const answered = () =>
    readFileSync(join(dir, "answered.log"), "utf8")
      .split("\n")
      .filter((line) => line !== "" && !line.includes("/ready "))
      .map((line) => line.replace(/ HTTP\/[\d.]+$/, ""));
  return { urls, answered, stop };
}

/**
 * nginx as two baselines, one process with two loopback servers:
 * - `sendfileUrl`: serves the upstream registry's own blob files with
 *   sendfile (the physical limit of this box for a cached blob);
 * - `forwardUrl`: `proxy_pass` to the CDN with buffering off, a pure streaming
 *   forwarder (what Wharf-style forwarders amount to), same paths as the CDN;
 * - `wanCdnUrl`: the same files as the CDN, each download held to
 *   `wanRate` bytes/s (`limit_rate`), as a CDN across a WAN link is; its
 *   access log counts the GETs (`wanGets`).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "../../tests/support/cleanup";
import { freePort } from "../../tests/support/ports";
import { WATCHDOG } from "../../tests/support/registry";

export interface Nginx {
  /** origin serving `<rootDir>/<path>` with sendfile */
  sendfileUrl: string;
  /** origin forwarding every request to `cdnUrl` */
  forwardUrl: string;
  /** origin serving `<rootDir>/<path>` at `wanRate` bytes/s per download */
  wanCdnUrl: string;
  wanRate: number;
  /** GETs of paths containing `needle` the WAN CDN has answered so far */
  wanGets(needle: string): number;
  stop(): Promise<void>;
}

export async function startNginx(rootDir: string, cdnUrl: string, wanRate: number): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-bench-nginx-"));
  removeAtExit(dir);
  const [sendfilePort, forwardPort, wanPort] = [await freePort(), await freePort(), await freePort()];
  const conf = `
daemon off;
master_process on;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${sendfilePort};
    root ${rootDir};
    sendfile on;
    tcp_nopush on;
    sendfile_max_chunk 0;
    default_type application/octet-stream;
  }
  server {
    listen 127.0.0.1:${wanPort};
    root ${rootDir};
    sendfile on;
    limit_rate ${Math.round(wanRate)};
    default_type application/octet-stream;
    access_log ${dir}/wan.log;
  }
  server {
    listen 127.0.0.1:${forwardPort};
    location / {
      proxy_pass ${cdnUrl};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`;
  await Bun.write(join(dir, "nginx.conf"), conf);
  // The watchdog SIGTERMs nginx when our end of the pipe closes, also if this process dies.
  const proc: Subprocess<"pipe", "ignore", "pipe"> = Bun.spawn(["sh", "-c", WATCHDOG, "sh", "nginx", "-p", dir, "-c", join(dir, "nginx.conf")], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "pipe",
  });
  const sendfileUrl = `http://127.0.0.1:${sendfilePort}`;
  const forwardUrl = `http://127.0.0.1:${forwardPort}`;
  const wanCdnUrl = `http://127.0.0.1:${wanPort}`;
  const stop = async () => {
    await proc.stdin.end();
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
    await proc.exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await Promise.all(
      [sendfileUrl, forwardUrl, wanCdnUrl].map((u) =>
        fetch(`${u}/`, { method: "HEAD" }).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (ok.every(Boolean)) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      const err = await new Response(proc.stderr).text().catch(() => "");
      await stop();
      throw new Error(`nginx did not start: ${err}${await Bun.file(join(dir, "error.log")).text().catch(() => "")}`);
    }
    await Bun.sleep(25);
  }
  const wanLog = join(dir, "wan.log");
  const wanGets = (needle: string) =>
    readFileSync(wanLog, "utf8")
      .split("\n")
      .filter((line) => line.includes(`"GET `) && line.includes(needle)).length;
  return { sendfileUrl, forwardUrl, wanCdnUrl, wanRate, wanGets, stop };
}

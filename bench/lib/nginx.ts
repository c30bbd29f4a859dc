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
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runNginx } from "../../tests/support/nginx";
import { freePort } from "../../tests/support/ports";

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
  const [sendfilePort, forwardPort, wanPort] = [await freePort(), await freePort(), await freePort()];
  const sendfileUrl = `http://127.0.0.1:${sendfilePort}`;
  const forwardUrl = `http://127.0.0.1:${forwardPort}`;
  const wanCdnUrl = `http://127.0.0.1:${wanPort}`;
  const http = (dir: string) => `
  access_log off;
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
  }`;
  const { dir, stop } = await runNginx(http, [sendfileUrl, forwardUrl, wanCdnUrl], { connections: 1024 });
  const wanLog = join(dir, "wan.log");
  const wanGets = (needle: string) =>
    readFileSync(wanLog, "utf8")
      .split("\n")
      .filter((line) => line.includes(`"GET `) && line.includes(needle)).length;
  return { sendfileUrl, forwardUrl, wanCdnUrl, wanRate, wanGets, stop };
}

/**
 * `/`: a small status page for people — what this docxy is, whether its
 * upstreams answer and how much quota is left, how the cache is doing (what
 * is pinned too), the pre-warm list's last run, what was pulled lately, and
 * the client configuration for this very proxy, ready to copy; then what is
 * in the cache (a browser of repositories, tags and platforms, with a purge
 * per repository for the bearer of the admin token) and charts of the last
 * hours. Server-rendered HTML with inline CSS; the browser and the charts
 * are an inline script over the JSON of status-cache.ts: no CDN, no external
 * asset (it must work where docxy is used, without internet access).
 *
 * It obeys `[access]` like the registry API. What it tells about others is
 * for the operator only: without the `[admin] token` (as a Bearer header) it
 * lists pulls of repositories known to be public — the cache's access gate
 * learnt that docxy itself may read them (cache/access-gate.ts); unknown, or
 * no cache, counts as private, so a pull of a private image with a client's
 * own credentials stays hidden — and shows neither client addresses nor the
 * names of upstream accounts (their remaining quota, yes).
 */
import { Elysia } from "elysia";
import { withLibraryPrefix } from "../../oci/reference";
import type { PrewarmStatus } from "../../cache/prewarm-schedule";
import type { RecentPull } from "../../observability/recent-pulls";
import type { Services } from "../../services";
import { VERSION } from "../../version";
import { bearsAdminToken } from "../admin-token";
import { contextOf } from "../request-context";
import { admit } from "../guard";
// Text, inlined into the page: one request, nothing to fetch from elsewhere.
import script from "./status-page.client.js" with { type: "text" };

const escape = (value: unknown) =>
  String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export function statusPageRoutes(services: Services) {
  const knownPublic = (pull: RecentPull) => {
    const upstream = services.upstreams.byRegistry(pull.registry);
    if (!services.cache || !upstream) return false;
    const repository = upstream.autoLibraryPrefix ? withLibraryPrefix(pull.repository) : pull.repository;
    return services.cache.index.getRepositoryAccess(upstream.name, repository)?.public === true;
  };

  return new Elysia({ name: "docxy/status-page", detail: { hide: true } }).get("/", async ({ request }) => {
    const context = contextOf(request);
    await admit(services.guards, request, context);
    const operator = bearsAdminToken(request, services.config.admin.token);
    const origin = services.publicOrigin.resolve(services.upstreams.default.publicBaseUrl, context.connection);
    const host = new URL(origin).host;
    const report = await services.health.report();
    const results = await services.metrics.cacheResults.get();
    const count = (result: string) => results.values.filter((v) => v.labels.result === result).reduce((n, v) => n + v.value, 0);
    const served = count("HIT") + count("STALE") + count("REVALIDATED");
    const total = served + count("MISS") + count("COALESCED");
    const cache = services.cache;
    const fleetBytes = cache?.fleetBytes();
    const pinned = cache?.index.pinned();
    const quota = (name: string) =>
      services.upstreams.byName(name)
        ? services.upstreamAuth
            .accountsOf(services.upstreams.byName(name)!)
            .map((a) => (operator ? `${escape(a.username)}: ${a.remaining ?? "?"}` : String(a.remaining ?? "?")))
            .join(", ")
        : "";

    const upstreamRows = report.upstreams
      .map(
        (u) =>
          `<tr><td>${escape(u.name)}</td><td>${escape(u.url)}</td><td class="${u.state === "up" ? "ok" : "bad"}">${u.state === "up" ? "reachable" : escape(`${u.state}: ${u.reason ?? ""}`)}</td>` +
          `<td>${u.latency_ms !== undefined ? `${u.latency_ms} ms` : "–"}</td><td>${quota(u.name) || "–"}</td></tr>`,
      )
      .join("");
    const columns = operator ? 5 : 4;
    const pullRows =
      services.recentPulls
        .list()
        .filter((p) => operator || knownPublic(p))
        .map(
          (p) =>
            `<tr><td>${escape(p.time.slice(11, 19))}</td><td>${escape(p.registry)}/${escape(p.repository)}:${escape(p.reference.slice(0, 19))}</td>` +
            `<td>${p.status}</td><td>${escape(p.cache || "–")}</td>${operator ? `<td>${escape(p.client)}</td>` : ""}</tr>`,
        )
        .join("") || `<tr><td colspan="${columns}">${operator ? "no pulls yet" : "no pulls of public images yet"}</td></tr>`;

    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>docxy ${escape(VERSION)}</title><link rel="icon" href="data:,">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:62rem;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e3e6ec}
.ok{color:#137333}.bad{color:#b3261e}.figures{display:flex;gap:2rem;flex-wrap:wrap}
.figure b{display:block;font-size:1.4rem}pre{background:#f4f6f9;padding:.8rem;overflow-x:auto}
.charts{display:flex;gap:1.5rem;flex-wrap:wrap}.charts figure{margin:0}.charts figure>b{display:block}.charts figcaption{font-size:.85rem}
button.link{background:none;border:0;padding:0;color:#1a56c4;cursor:pointer;font:inherit}
.detail>td{background:#f8f9fb}.platforms{margin:0;padding-left:1rem;font-size:.85rem}
</style></head><body>
<h1>docxy <small>${escape(VERSION)}</small></h1>
<p>Status <b class="${report.status === "ok" ? "ok" : "bad"}">${report.status}</b>, up ${report.uptime_seconds} s. <a href="/docs">API</a> · <a href="/metrics">metrics</a> · <a href="/health">health</a></p>
<div class="figures">
<div class="figure"><b>${cache ? mib(cache.index.totalBytes()) : "off"}</b>cache size${cache ? ` of ${mib(cache.maxBytes)}` : ""}</div>
<div class="figure"><b>${cache ? cache.index.entries() : 0}</b>cached items</div>${pinned && pinned.entries > 0 ? `\n<div class="figure"><b>${mib(pinned.bytes)}</b>pinned (${pinned.entries} items, never evicted)</div>` : ""}${fleetBytes === undefined ? "" : `\n<div class="figure"><b>${mib(fleetBytes)}</b>in the fleet's shared bucket</div>`}
<div class="figure"><b>${total ? `${Math.round((100 * served) / total)} %` : "–"}</b>served from cache (${served} of ${total})</div>
<div class="figure"><b>${cache?.blobs.fillsInProgress ?? 0}</b>downloads in progress</div>
</div>
${prewarmSection(services.prewarm?.status(), operator)}<h2>Upstreams</h2>
<table><tr><th>name</th><th>URL</th><th>state</th><th>latency</th><th>quota left</th></tr>${upstreamRows}</table>
<h2>Recent pulls</h2>
<table><tr><th>time (UTC)</th><th>image</th><th>status</th><th>cache</th>${operator ? "<th>client</th>" : ""}</tr>${pullRows}</table>
<h2>Activity <small>last 6 hours, per minute</small></h2>
<div class="charts">
<figure id="chart-requests"><b>cache hits and misses</b></figure>
<figure id="chart-bytes"><b>bytes served</b></figure>
<figure id="chart-upstream"><b>upstream requests</b></figure>
</div>
<h2>Cache</h2>
<p><label>admin token <input id="admin-token" type="password" autocomplete="off"></label> <button id="use-token" type="button">use</button>
<button id="forget-token" type="button" hidden>forget</button> <small id="token-state"></small></p>
<p><label>repository contains <input id="repo-filter" type="search"></label> <span id="cache-message" role="status"></span></p>
<table id="cache-browser"><thead><tr><th>repository</th><th>tags</th><th>cached</th><th>last pulled</th><th>pinned</th><th></th></tr></thead>
<tbody id="cache-repositories"></tbody></table>
<p><button id="more-repositories" type="button" hidden>more repositories</button></p>
<h2>Use this proxy</h2>
<p>Docker, <code>/etc/docker/daemon.json</code>:</p>
<pre>{ "registry-mirrors": ["${escape(origin)}"] }</pre>
<p>containerd, <code>/etc/containerd/certs.d/docker.io/hosts.toml</code> (same for ghcr.io, quay.io, registry.k8s.io…):</p>
<pre>server = "https://registry-1.docker.io"

[host."${escape(origin)}"]
  capabilities = ["pull", "resolve"]</pre>
<p>podman, buildah, skopeo, <code>/etc/containers/registries.conf</code>:</p>
<pre>[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"

[[registry.mirror]]
location = "${escape(host)}"${origin.startsWith("http://") ? "\ninsecure = true" : ""}</pre>
<p>Other registries by path: <code>docker pull ${escape(host)}/ghcr.io/OWNER/IMAGE:TAG</code></p>
<script>${script}</script>
</body></html>`;
    return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
  });
}

/**
 * The pre-warm list's state: the run going and the last run's account. The
 * images and their errors are the operator's (the list may name private
 * images); others see the counts.
 */
function prewarmSection(status: PrewarmStatus | undefined, operator: boolean): string {
  if (!status || (!status.file && !status.last && !status.running)) return "";
  const { running, last } = status;
  const now = running ? `<p>Running since ${escape(running.started)}: ${running.images.length} done${running.current && operator ? `, now ${escape(running.current)}` : ""}.</p>` : "";
  if (!last) return `<h2>Pre-warm</h2>\n${now || "<p>No run yet.</p>"}\n`;
  const ok = last.images.filter((i) => i.ok).length;
  const failures = operator
    ? [...last.problems.map((p) => `line ${p.line}: ${p.error}`), ...last.images.filter((i) => !i.ok).map((i) => `line ${i.line} ${i.image}: ${i.error ?? ""}`)]
    : [];
  return (
    `<h2>Pre-warm</h2>\n${now}<p>Last run ${escape(last.finished ?? "")}: <b class="${last.result === "ok" ? "ok" : "bad"}">${escape(last.result ?? "")}</b>, ` +
    `${ok} of ${last.images.length} images, ${mib(last.bytes)}${last.problems.length ? `, ${last.problems.length} bad lines` : ""}.</p>\n` +
    (failures.length ? `<ul>${failures.map((f) => `<li>${escape(f)}</li>`).join("")}</ul>\n` : "")
  );
}

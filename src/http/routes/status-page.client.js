// The status page's script (inlined by status-page.ts; no external asset, so the page works offline):
// the cache browser over /status/cache, the charts over /status/activity, and purging through the
// admin API. The admin token lives in this tab's sessionStorage only and goes out as a Bearer
// header; the server checks it on every request, the page only hides what would be refused.
(() => {
  const TOKEN_KEY = "docxy.admin-token";
  const SVG = new Set(["svg", "path", "line", "text"]);
  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const headers = () => (token() ? { authorization: `Bearer ${token()}` } : {});
  const el = (tag, attributes = {}, ...children) => {
    const node = document.createElementNS(SVG.has(tag) ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    node.append(...children);
    return node;
  };
  const bytes = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  };
  const sized = (n) => el("span", { "data-bytes": n, title: `${n} bytes` }, bytes(n));
  const when = (iso) => (iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "–");
  const say = (text, bad = false) => {
    $("cache-message").textContent = text;
    $("cache-message").className = bad ? "bad" : "";
  };

  // --- the cache browser -----------------------------------------------------------------------
  let next;
  async function loadRepositories(append) {
    const query = new URLSearchParams({ limit: "50" });
    if (append && next) query.set("after", next);
    if ($("repo-filter").value) query.set("contains", $("repo-filter").value);
    const response = await fetch(`/status/cache?${query}`, { headers: headers() });
    if (!response.ok) return say(`the cache list failed: ${response.status}`, true);
    const page = await response.json();
    const body = $("cache-repositories");
    if (!append) body.replaceChildren();
    if (!page.enabled) body.append(el("tr", {}, el("td", { colspan: 6 }, "the cache is off")));
    else if (!append && page.repositories.length === 0) body.append(el("tr", {}, el("td", { colspan: 6 }, token() ? "nothing cached" : "no public repository cached")));
    for (const r of page.repositories) body.append(repositoryRow(r));
    next = page.next;
    $("more-repositories").hidden = !next;
  }

  function repositoryRow(r) {
    const name = `${r.upstream}/${r.repository}`;
    const open = el("button", { type: "button", class: "link", "aria-expanded": "false" }, r.repository);
    const purge = el("button", { type: "button", class: "purge" }, "purge");
    purge.hidden = !token();
    const row = el(
      "tr",
      { class: "repository", "data-upstream": r.upstream, "data-repository": r.repository },
      el("td", {}, el("small", {}, `${r.upstream} `), open),
      el("td", { class: "tags" }, String(r.tags)),
      el("td", { class: "size" }, sized(r.cached_bytes)),
      el("td", {}, when(r.last_pulled)),
      el("td", { class: "pinned" }, r.pinned ? "pinned" : "–"),
      el("td", {}, purge),
    );
    open.addEventListener("click", () => toggleTags(row, r, open));
    purge.addEventListener("click", () => purgeRepository(r, name));
    return row;
  }

  async function toggleTags(row, r, open) {
    if (row.nextElementSibling?.classList.contains("detail")) {
      row.nextElementSibling.remove();
      return open.setAttribute("aria-expanded", "false");
    }
    const query = new URLSearchParams({ upstream: r.upstream, repository: r.repository });
    const response = await fetch(`/status/cache/repository?${query}`, { headers: headers() });
    if (!response.ok) return say(`${r.repository}: ${response.status}`, true);
    const view = await response.json();
    const tags = el("tbody");
    for (const tag of view.tags) {
      const platforms = el("ul", { class: "platforms" });
      for (const p of tag.platforms) {
        platforms.append(el("li", { "data-platform": p.platform }, `${p.platform} `, sized(p.size), p.complete ? "" : " (not pulled)"));
      }
      tags.append(
        el(
          "tr",
          { class: "tag", "data-tag": tag.tag },
          el("td", {}, tag.tag),
          el("td", {}, el("code", { title: tag.digest }, tag.digest.slice(0, 19))),
          el("td", { class: "size" }, sized(tag.size)),
          el("td", { class: "cached" }, sized(tag.cached_bytes)),
          el("td", {}, when(tag.last_pulled)),
          el("td", { class: "pinned" }, tag.pinned ? "pinned" : "–"),
          el("td", {}, platforms),
        ),
      );
    }
    if (view.more) tags.append(el("tr", {}, el("td", { colspan: 7 }, `first ${view.tags.length} tags shown`)));
    const head = el("tr", {}, ...["tag", "digest", "size", "cached", "last pulled", "pinned", "platforms"].map((h) => el("th", {}, h)));
    row.after(el("tr", { class: "detail" }, el("td", { colspan: 6 }, el("table", {}, el("thead", {}, head), tags))));
    open.setAttribute("aria-expanded", "true");
  }

  async function purgeRepository(r, name) {
    if (!confirm(`Purge ${name} from the cache?`)) return;
    const query = new URLSearchParams({ upstream: r.upstream, repository: r.repository });
    const response = await fetch(`/admin/cache/repositories?${query}`, { method: "DELETE", headers: headers() });
    if (!response.ok) return say(`purging ${name} was refused: ${response.status}`, true);
    const result = await response.json();
    say(`purged ${name}: ${result.removed.length} removed${result.kept ? `, ${result.kept.length} kept (in use)` : ""}`);
    await loadRepositories(false);
  }

  async function useToken() {
    const given = $("admin-token").value.trim();
    if (!given) return;
    // Checked before it is kept, so a typo shows now rather than as refused purges later.
    const response = await fetch("/admin/cache", { headers: { authorization: `Bearer ${given}` } });
    if (!response.ok) return say(response.status === 404 ? "the admin API is off: set [admin] token" : "the admin token was refused", true);
    sessionStorage.setItem(TOKEN_KEY, given);
    $("admin-token").value = "";
    showToken();
    await loadRepositories(false);
  }

  function showToken() {
    $("token-state").textContent = token() ? "admin token in use (this tab only)" : "no admin token: public repositories only, no purge";
    $("forget-token").hidden = !token();
  }

  // --- the charts --------------------------------------------------------------------------------
  const CHARTS = [
    { id: "chart-requests", series: [["hits", "#137333"], ["misses", "#b3261e"]], format: String },
    { id: "chart-bytes", series: [["cache_bytes", "#137333"], ["upstream_bytes", "#1a56c4"]], format: bytes },
    { id: "chart-upstream", series: [["upstream_requests", "#1a56c4"]], format: String },
  ];
  const W = 360;
  const H = 90;

  async function loadActivity() {
    const response = await fetch("/status/activity?minutes=360", { headers: headers() });
    if (!response.ok) return;
    const activity = await response.json();
    for (const chart of CHARTS) drawChart($(chart.id), chart, activity);
  }

  function drawChart(figure, chart, activity) {
    const values = chart.series.map(([name]) => activity.series[name]);
    const top = Math.max(1, ...values.flat());
    const count = values[0].length;
    const x = (i) => (count > 1 ? (i * W) / (count - 1) : W).toFixed(1);
    const y = (v) => (H - (v * (H - 4)) / top).toFixed(1);
    const hours = (count * activity.bucket_seconds) / 3600;
    const svg = el(
      "svg",
      { viewBox: `0 -12 ${W} ${H + 12}`, width: W, height: H + 12, role: "img" },
      el("line", { x1: 0, y1: H, x2: W, y2: H, stroke: "#c9ced8" }),
      el("text", { x: 0, y: -2, "font-size": 10, fill: "#6b7280" }, `${hours} h ago · max ${chart.format(top)}`),
      el("text", { x: W, y: -2, "font-size": 10, fill: "#6b7280", "text-anchor": "end" }, "now"),
    );
    const legend = el("figcaption");
    chart.series.forEach(([name, color], s) => {
      const d = values[s].map((v, i) => `${i ? "L" : "M"}${x(i)} ${y(v)}`).join(" ");
      const total = values[s].reduce((a, b) => a + b, 0);
      svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, "data-series": name, "data-total": total }));
      legend.append(el("span", { style: `color:${color}` }, `${name.replace("_", " ")} ${chart.format(total)} `));
    });
    figure.querySelector("svg")?.remove();
    figure.querySelector("figcaption")?.remove();
    figure.append(svg, legend);
  }

  $("use-token").addEventListener("click", useToken);
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    loadRepositories(false);
  });
  $("more-repositories").addEventListener("click", () => loadRepositories(true));
  $("repo-filter").addEventListener("change", () => loadRepositories(false));
  showToken();
  loadRepositories(false);
  loadActivity();
  setInterval(loadActivity, 60_000);
})();

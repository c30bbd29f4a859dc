/**
 * Measures the design choice behind src/server/node-bridge.ts: how fast a
 * streamed blob crosses each way of serving it, and whether the client gets
 * its Content-Length. Run: `bun scripts/measure-relay.ts [MiB]` (needs curl
 * and dist/docxy). Results are recorded in the README's design notes.
 */
import { $ } from "bun";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

const MIB = Number(process.argv[2] ?? 1024);
const RUNS = 3;
const dir = mkdtempSync(join(tmpdir(), "docxy-measure-"));
const blob = join(dir, "blob");
await $`truncate -s ${MIB}M ${blob}`;

const upstream = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: () => new Response(Bun.file(blob)) });
const source = `${upstream.url.origin}/blob`;

const bunRelay = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  async fetch() {
    const r = await fetch(source, { decompress: false });
    return new Response(r.body, { headers: { "content-length": r.headers.get("content-length")! } });
  },
});

const nodeRelay = http.createServer(async (_req, res) => {
  const r = await fetch(source, { decompress: false });
  res.writeHead(200, { "content-length": r.headers.get("content-length")! });
  await pipeline(Readable.fromWeb(r.body as never), res).catch(() => res.destroy());
});
await new Promise<void>((resolve) => nodeRelay.listen(0, "127.0.0.1", resolve));

// The cache is off: this measures the streaming relay itself (the blob is not a real digest).
const docxy = Bun.spawn(["dist/docxy", "--bind", "127.0.0.1", "--http-port", "0", "--upstream", upstream.url.origin], {
  stderr: "pipe",
  env: { ...process.env, DOCXY_CACHE_ENABLED: "false" },
});
let log = "";
void (async () => {
  for await (const chunk of docxy.stderr) log += new TextDecoder().decode(chunk); // keep draining: a closed pipe would end docxy
})();
while (!log.includes("docxy started")) await Bun.sleep(10);
const docxyPort = /url=http:\/\/[^ ]*:(\d+)/.exec(log)![1];

const targets: [string, string][] = [
  ["direct (Bun.file, sendfile)", source],
  ["Bun.serve relay", `${bunRelay.url.origin}/`],
  ["node:http relay in Bun", `http://127.0.0.1:${(nodeRelay.address() as { port: number }).port}/`],
  ["docxy (node:http + Elysia)", `http://127.0.0.1:${docxyPort}/v2/x/blobs/sha256:${"0".repeat(64)}`],
];

console.log(`| path | MB/s (median of ${RUNS}) | Content-Length to client |`);
console.log("|---|---|---|");
for (const [name, url] of targets) {
  const speeds: number[] = [];
  let framing = "";
  for (let i = 0; i < RUNS; i++) {
    const out = await $`curl -s -o /dev/null -D - -w 'SPEED %{speed_download}' ${url}`.text();
    speeds.push(Number(/SPEED ([\d.]+)/.exec(out)![1]) / 1e6);
    framing = /content-length: (\d+)/i.test(out) ? "yes" : /transfer-encoding: chunked/i.test(out) ? "no (chunked)" : "?";
  }
  speeds.sort((a, b) => a - b);
  console.log(`| ${name} | ${speeds[1]!.toFixed(0)} | ${framing} |`);
}

docxy.kill();
upstream.stop(true);
bunRelay.stop(true);
nodeRelay.close();
rmSync(dir, { recursive: true, force: true });

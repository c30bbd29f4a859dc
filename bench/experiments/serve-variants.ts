/**
 * Isolated measurements behind the suggestions in BENCHMARKS.md, outside
 * docxy (only its file sender is imported): how the ways docxy could serve a
 * cache hit and relay a cold blob compare in throughput and memory on this box.
 *
 *   bun bench/experiments/serve-variants.ts [MiB]
 *
 * Each variant runs as a server process of its own (`serve` mode below), so
 * its RSS is its own. Hits: node:http + fs.createReadStream as docxy's
 * node-bridge did, at several chunk sizes, node:http + docxy's file sender
 * (src/server/file-sender.ts) as it does now, and Bun.serve with Bun.file
 * (sendfile). Cold: node:http relaying a fetch body, bare, plus sha256 on the
 * main thread, plus the temp-file write, and with the sha256 moved to a
 * Worker. Clients: one curl at full speed; 64 curls at 1 MiB/s for 10 s.
 */
import { $ } from "bun";
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Worker } from "node:worker_threads";
import { memoryOf } from "../lib/docxy";
import { FileSender } from "../../src/server/file-sender";

type Mode = { kind: "hit-node"; chunk: number } | { kind: "hit-sender" } | { kind: "hit-bun" } | { kind: "cold"; hash: "none" | "main" | "worker"; write: boolean };

const HASH_WORKER = `
const { parentPort } = require("node:worker_threads");
const h = new Bun.CryptoHasher("sha256");
parentPort.on("message", (m) => { if (m === "end") parentPort.postMessage(h.digest("hex")); else h.update(m); });
`;

async function serve(mode: Mode, file: string, size: number, upstream: string): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), "docxy-exp-"));
  if (mode.kind === "hit-bun") {
    const s = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: () => new Response(Bun.file(file)) });
    console.log(`PORT ${s.port}`);
    return;
  }
  const files = new FileSender();
  const server = http.createServer(async (_req, res) => {
    res.writeHead(200, { "content-length": String(size), "content-type": "application/octet-stream" });
    if (mode.kind === "hit-sender") {
      res.flushHeaders();
      await files.send(res, { path: file, start: 0, end: size - 1 }, () => {}).catch(() => res.destroy());
      return;
    }
    if (mode.kind === "hit-node") {
      await pipeline(createReadStream(file, { highWaterMark: mode.chunk }), res).catch(() => res.destroy());
      return;
    }
    const r = await fetch(upstream, { decompress: false });
    let body = r.body!;
    const path = join(tmp, crypto.randomUUID());
    const handle = mode.write ? await open(path, "wx+") : undefined;
    const hasher = mode.hash === "main" ? createHash("sha256") : undefined;
    const worker = mode.hash === "worker" ? new Worker(HASH_WORKER, { eval: true }) : undefined;
    let at = 0;
    body = body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, controller) {
          hasher?.update(chunk);
          worker?.postMessage(chunk); // structured clone: a memcpy on this thread, the hashing on another
          if (handle) {
            const pos = at;
            at += chunk.length;
            await handle.write(chunk, 0, chunk.length, pos);
          }
          controller.enqueue(chunk);
        },
      }),
    );
    await pipeline(Readable.fromWeb(body as never), res).catch(() => res.destroy());
    hasher?.digest("hex");
    if (worker) {
      worker.postMessage("end");
      await new Promise((resolve) => worker.once("message", resolve));
      await worker.terminate();
    }
    await handle?.close();
    rmSync(path, { force: true });
  });
  server.listen(0, "127.0.0.1", () => console.log(`PORT ${(server.address() as { port: number }).port}`));
}

async function measure(label: string, mode: Mode, file: string, size: number, upstream: string): Promise<string> {
  const child = Bun.spawn([process.execPath, import.meta.path, "serve", JSON.stringify({ mode, file, size, upstream })], { stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let out = "";
  while (!/PORT (\d+)/.test(out)) out += new TextDecoder().decode((await reader.read()).value);
  const url = `http://127.0.0.1:${/PORT (\d+)/.exec(out)![1]}/`;
  const speeds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await $`curl -s -o /dev/null -w '%{speed_download}' ${url}`.text();
    speeds.push(Number(r) / 1e6);
  }
  speeds.sort((a, b) => a - b);
  let peak = 0;
  let slow = "";
  if (mode.kind !== "cold") {
    // Memory under 64 slow clients (cold variants are single-client relays; skipped).
    await $`echo 5 > /proc/${child.pid}/clear_refs`.nothrow();
    let on = true;
    const sampler = (async () => {
      while (on) {
        peak = Math.max(peak, (await memoryOf(child.pid)).hwm);
        await Bun.sleep(100);
      }
    })();
    await Promise.all(Array.from({ length: 64 }, () => $`curl -s -o /dev/null --limit-rate 1M --max-time 10 ${url}`.nothrow().quiet()));
    on = false;
    await sampler;
    slow = `${(peak / 1e6).toFixed(0)} MB`;
  }
  child.kill();
  await child.exited;
  return `| ${label} | ${speeds[1]!.toFixed(0)} (${speeds[0]!.toFixed(0)}–${speeds[2]!.toFixed(0)}) | ${slow || "—"} |`;
}

if (Bun.argv[2] === "serve") {
  const { mode, file, size, upstream } = JSON.parse(Bun.argv[3]!) as { mode: Mode; file: string; size: number; upstream: string };
  await serve(mode, file, size, upstream);
} else {
  const mib = Number(Bun.argv[2] ?? 512);
  const dir = mkdtempSync(join(tmpdir(), "docxy-exp-file-"));
  const file = join(dir, "blob");
  await $`head -c ${mib}M /dev/urandom > ${file}`;
  const size = mib * 2 ** 20;
  const up = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: () => new Response(Bun.file(file)) });
  const upstream = `http://127.0.0.1:${up.port}/`;
  console.log(`${mib} MiB file; MB/s of one curl (median of 3, min–max); peak RSS with 64 clients at 1 MiB/s for 10 s\n`);
  console.log("| variant | MB/s | peak RSS, 64 slow clients |\n|---|---|---|");
  const variants: [string, Mode][] = [
    ["hit: node:http + createReadStream, 4 MiB chunks (docxy at c031a6b)", { kind: "hit-node", chunk: 4 << 20 }],
    ["hit: node:http + docxy's file sender (now)", { kind: "hit-sender" }],
    ["hit: node:http + createReadStream, 1 MiB chunks", { kind: "hit-node", chunk: 1 << 20 }],
    ["hit: node:http + createReadStream, 256 KiB chunks", { kind: "hit-node", chunk: 256 << 10 }],
    ["hit: node:http + createReadStream, 64 KiB chunks", { kind: "hit-node", chunk: 64 << 10 }],
    ["hit: Bun.serve + Bun.file (sendfile)", { kind: "hit-bun" }],
    ["cold: node:http relay of the fetch body", { kind: "cold", hash: "none", write: false }],
    ["cold: + sha256 on the main thread", { kind: "cold", hash: "main", write: false }],
    ["cold: + sha256 on the main thread + temp-file write", { kind: "cold", hash: "main", write: true }],
    ["cold: + temp-file write, sha256 in a Worker", { kind: "cold", hash: "worker", write: true }],
  ];
  for (const [label, mode] of variants) console.log(await measure(label, mode, file, size, upstream));
  up.stop(true);
  rmSync(dir, { recursive: true, force: true });
}

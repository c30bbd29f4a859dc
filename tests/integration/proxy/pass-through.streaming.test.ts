/**
 * Streams stay streams: a blob far larger than docxy's working memory passes
 * through with bounded memory while the client stalls, and arrives whole with
 * its exact length — as a pure pass-through, and through the cache (where the
 * fill goes to disk at the upstream's pace while the client stalls). The
 * upstream serves a sparse 1 GiB file (no disk, no RAM).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDocxy, type Docxy } from "../../support/docxy-process";

const SIZE = 1024 ** 3;
const dir = mkdtempSync(join(tmpdir(), "docxy-sparse-"));
const blob = join(dir, "blob");
const upstream = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: () => new Response(Bun.file(blob)) });

let passThrough: Docxy;
let caching: Docxy;
let digest: string;
beforeAll(async () => {
  await Bun.$`truncate -s ${SIZE} ${blob}`;
  digest = `sha256:${new Bun.CryptoHasher("sha256").update(await Bun.file(blob).arrayBuffer()).digest("hex")}`;
  passThrough = await startDocxy({ args: ["--upstream", upstream.url.origin], env: { DOCXY_CACHE_ENABLED: "false" } });
  caching = await startDocxy({ args: ["--upstream", upstream.url.origin] });
}, 30_000);
afterAll(async () => {
  await Promise.all([passThrough?.stop(), caching?.stop()]);
  upstream.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

/**
 * Bounds: the pass-through is held back by the stalled client, so only socket
 * buffers are in flight. The cache fill does not wait for clients: the whole
 * gigabyte streams to disk meanwhile, and what it costs in memory is the
 * fill's fixed windows plus garbage the collector has not reclaimed yet —
 * bounded, but larger.
 */
test.each([
  ["pass-through", () => passThrough, 96],
  ["through the cache", () => caching, 224],
])("%s: a stalled client holds docxy's memory bounded; the whole gigabyte then arrives with its length", async (_mode, which, boundMiB) => {
  const docxy = which();
  const before = rssMiB(docxy.pid);
  const { port } = new URL(docxy.url);
  const socket = connect(Number(port), "127.0.0.1");
  socket.setNoDelay(true);
  socket.write(`GET /v2/acme/big/blobs/${digest} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`);

  let received = 0;
  let head = "";
  let stalling = true;
  socket.on("data", (chunk: Buffer) => {
    if (!head.includes("\r\n\r\n")) {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end >= 0) received += head.length - end - 4;
    } else received += chunk.length;
    if (stalling && received > 8 * 1024 * 1024) socket.pause(); // the client stops reading
  });
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));

  let peak = 0;
  for (let i = 0; i < 20; i++) {
    await Bun.sleep(100);
    peak = Math.max(peak, rssMiB(docxy.pid));
  }
  expect(received).toBeLessThan(SIZE / 4); // it really is stalled, not finished
  expect(peak - before).toBeLessThan(boundMiB); // not the gigabyte

  stalling = false;
  socket.resume();
  await closed;
  expect(head).toContain(`content-length: ${SIZE}`);
  expect(head.toLowerCase()).not.toContain("transfer-encoding");
  expect(received).toBe(SIZE);
  expect(rssMiB(docxy.pid) - before).toBeLessThan(boundMiB + 32);
}, 60_000);

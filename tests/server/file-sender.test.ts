/**
 * FileSender on a real node:http server and real sockets: exact bytes for
 * any range, under backpressure from a client that reads slowly, and a cut
 * (never a clean end) when the file is shorter than promised or the client
 * leaves, with the file closed afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSender, GROW_AFTER } from "../../src/server/file-sender";

const files = new FileSender();
const SIZE = 5 * 1024 * 1024 + 12345; // several chunks, not a multiple of any
let dir: string;
let path: string;
let content: Buffer;
/** Larger than GROW_AFTER, for the chunk sizes. */
let bigPath: string;
/** Sizes of the chunks written to each response whose URL has `sizes`, in order. */
const written: number[][] = [];
let server: Server;
let port: number;
/** Outcome of each send, in order: bytes reported, or the error message. */
const outcomes: Array<{ bytes: number; error?: string }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "file-sender-"));
  path = join(dir, "blob");
  content = Buffer.from(new Uint8Array(SIZE).map((_, i) => (i * 7919) % 251));
  writeFileSync(path, content);
  bigPath = join(dir, "big");
  writeFileSync(bigPath, Buffer.alloc(GROW_AFTER + 4 * 1024 * 1024, 7));
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const start = Number(url.searchParams.get("start"));
    const end = Number(url.searchParams.get("end"));
    res.writeHead(200, { "content-length": String(end - start + 1) });
    res.flushHeaders();
    const outcome = { bytes: 0 } as { bytes: number; error?: string };
    outcomes.push(outcome);
    if (url.searchParams.has("sizes")) {
      const sizes: number[] = [];
      written.push(sizes);
      const write = res.write.bind(res) as (chunk: Uint8Array) => boolean;
      res.write = ((chunk: Uint8Array) => (sizes.push(chunk.length), write(chunk))) as typeof res.write;
    }
    files.send(res, url.searchParams.has("sizes") ? bigPath : path, start, end, (n) => (outcome.bytes += n)).catch((error: Error) => {
      outcome.error = error.message;
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (start: number, end: number) => fetch(`http://127.0.0.1:${port}/?start=${start}&end=${end}`);

/** Descriptors of this process that point at the test blob. */
const openOnBlob = () =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;

test("any range arrives byte for byte, and every byte is counted", async () => {
  const ranges: Array<[number, number]> = [
    [0, SIZE - 1],
    [0, 0],
    [SIZE - 1, SIZE - 1],
    [65535, 65536 + 131072], // across the first chunk boundaries
    [1_000_001, 4_500_000],
  ];
  for (const [start, end] of ranges) {
    const before = outcomes.length;
    const body = Buffer.from(await (await get(start, end)).arrayBuffer());
    expect(body.equals(content.subarray(start, end + 1))).toBe(true);
    await Bun.sleep(20);
    expect(outcomes[before]).toEqual({ bytes: end - start + 1 });
  }
  expect(openOnBlob()).toBe(0);
});

test("a client that reads slowly gets every byte (buffers are reused under backpressure)", async () => {
  const before = outcomes.length;
  const received = await new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    const socket = connect({ port, host: "127.0.0.1" }, () => {
      socket.write(`GET /?start=0&end=${SIZE - 1} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    // Pause after every read so the server's writes hit backpressure again and again.
    socket.on("data", (data: Buffer) => {
      parts.push(data);
      socket.pause();
      setTimeout(() => socket.resume(), 2);
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(parts)));
  });
  const body = received.subarray(received.indexOf("\r\n\r\n") + 4);
  expect(body.length).toBe(SIZE);
  expect(Bun.hash(body)).toBe(Bun.hash(content));
  expect(outcomes[before]).toEqual({ bytes: SIZE });
});

test("a file shorter than the range cuts the connection instead of ending it", async () => {
  const before = outcomes.length;
  const response = await get(SIZE - 10, SIZE + 100);
  expect(response.headers.get("content-length")).toBe("111");
  await expect(response.arrayBuffer()).rejects.toThrow();
  await Bun.sleep(20);
  expect(outcomes[before]?.error).toContain("ended at byte");
  expect(openOnBlob()).toBe(0);
});

test("a client that leaves mid-body stops the send and the file is closed", async () => {
  const before = outcomes.length;
  await new Promise<void>((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" }, () => {
      socket.write(`GET /?start=0&end=${SIZE - 1} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
    let seen = 0;
    socket.on("data", (data) => {
      seen += data.length;
      if (seen > 256 * 1024) {
        socket.destroy();
        resolve();
      }
    });
    socket.on("error", () => resolve());
  });
  // The sender learns of the hang-up at its next write, once the socket buffers are full: on a
  // loaded machine that took over 2 s (a CI run), so wait for the outcome up to 10 s.
  for (let i = 0; i < 500 && outcomes[before]?.error === undefined; i++) await Bun.sleep(20);
  expect(outcomes[before]?.error).toBe("client closed the connection");
  expect(outcomes[before]!.bytes).toBeLessThan(SIZE);
  expect(openOnBlob()).toBe(0);
}, 15_000);

test("chunks stay at 64 KiB until the client has taken GROW_AFTER bytes, however fast it drains", async () => {
  // The socket buffers take a slow client's first MiBs at once: growing then handed 64 slow
  // clients 2 MiB chunks each (scenario 5). Sizes only, never timings: a fast reader here.
  const size = GROW_AFTER + 4 * 1024 * 1024;
  const before = outcomes.length;
  const body = await (await fetch(`http://127.0.0.1:${port}/?start=0&end=${size - 1}&sizes`)).arrayBuffer();
  expect(body.byteLength).toBe(size);
  expect(outcomes[before]).toEqual({ bytes: size });
  const sizes = written.at(-1)!;
  let sent = 0;
  for (const chunk of sizes) {
    if (sent >= GROW_AFTER) break;
    expect(chunk).toBeLessThanOrEqual(64 * 1024);
    sent += chunk;
  }
  expect(sent).toBeGreaterThanOrEqual(GROW_AFTER); // the last chunk goes out with end(), not write()
});

/**
 * FileSender on a real node:http server and real sockets: exact bytes for
 * any range, under backpressure from a client that reads slowly, and a cut
 * (never a clean end) when the file is shorter than promised or the client
 * leaves, with the file closed afterwards. A file still being written (a
 * fill's temp file) is sent as far as its growth allows, as it grows.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { appendFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSender, GROW_AFTER } from "../../src/server/file-sender";
import type { FileGrowth } from "../../src/util/file-response";

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
/** The file sent to responses whose URL has `growing` (set by the test). */
let growing: { path: string; start: number; end: number; growth: FileGrowth } | undefined;
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
    const file = url.searchParams.has("growing") ? growing! : { path: url.searchParams.has("sizes") ? bigPath : path, start, end };
    const send = () =>
      files.send(res, file, (n) => (outcome.bytes += n)).catch((error: Error) => {
        outcome.error = error.message;
        res.destroy();
      });
    // `afterClose`: the send starts once the client has gone (it left while the file was opened).
    if (url.searchParams.has("afterClose")) res.once("close", send);
    else send();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (start: number, end: number) => fetch(`http://127.0.0.1:${port}/?start=${start}&end=${end}`);
const getGrowing = (size: number) => fetch(`http://127.0.0.1:${port}/?growing&start=0&end=${size - 1}`);

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

/** A file written by the test while it is sent: `grow` appends and lets the sender read on. */
function growingFile(size: number) {
  const file = join(dir, `growing-${outcomes.length}`);
  writeFileSync(file, "");
  let readable = 0;
  let failure: Error | undefined;
  let wake: (() => void)[] = [];
  const notify = () => (wake.splice(0).forEach((resolve) => resolve()), undefined);
  const growth: FileGrowth = {
    readable: () => {
      if (failure) throw failure;
      return readable;
    },
    grown: () => new Promise((resolve) => wake.push(resolve)),
  };
  growing = { path: file, start: 0, end: size - 1, growth };
  return {
    grow(bytes: Buffer) {
      appendFileSync(file, bytes);
      readable += bytes.length;
      notify();
    },
    fail(error: Error) {
      failure = error;
      notify();
    },
    waiting: () => wake.length,
  };
}

test("a growing file is sent as it grows, and the body ends only with its last byte", async () => {
  const size = 3 * 1024 * 1024 + 5;
  const file = growingFile(size);
  const before = outcomes.length;
  const response = getGrowing(size).then(async (r) => Buffer.from(await r.arrayBuffer()));
  for (let at = 0; at < size; at += 1024 * 1024) {
    while (file.waiting() === 0) await Bun.sleep(2); // the sender waits for the file to grow
    file.grow(content.subarray(at, Math.min(at + 1024 * 1024, size)));
  }
  const body = await response;
  expect(body.equals(content.subarray(0, size))).toBe(true);
  await Bun.sleep(20);
  expect(outcomes[before]).toEqual({ bytes: size });
});

test("a growth that fails cuts the connection after the bytes that were there", async () => {
  const file = growingFile(SIZE);
  const before = outcomes.length;
  const response = await getGrowing(SIZE);
  file.grow(content.subarray(0, 100_000));
  while (file.waiting() === 0) await Bun.sleep(2);
  file.fail(new Error("the fill failed"));
  await expect(response.arrayBuffer()).rejects.toThrow();
  await Bun.sleep(20);
  expect(outcomes[before]).toEqual({ bytes: 100_000, error: "the fill failed" });
});

for (const [when, query] of [
  ["while the file does not grow", ""],
  ["before the send begins", "&afterClose"],
]) {
  test(`a client leaving ${when} ends the send at once, and the file is closed`, async () => {
    const file = growingFile(SIZE);
    const before = outcomes.length;
    await new Promise<void>((resolve) => {
      const socket = connect({ port, host: "127.0.0.1" }, () => socket.write(`GET /?growing${query}&start=0&end=${SIZE - 1} HTTP/1.1\r\nHost: x\r\n\r\n`));
      socket.once("data", () => {
        socket.destroy(); // the head is out, no byte of the body is there
        resolve();
      });
    });
    for (let i = 0; i < 500 && outcomes[before]?.error === undefined; i++) await Bun.sleep(20);
    expect(outcomes[before]).toEqual({ bytes: 0, error: "client closed the connection" });
    expect(file.waiting()).toBe(1); // its wait was abandoned, not answered
    expect(readdirSync("/proc/self/fd").filter((fd) => readlinkSafe(`/proc/self/fd/${fd}`) === growing!.path)).toHaveLength(0);
  }, 15_000);
}

function readlinkSafe(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

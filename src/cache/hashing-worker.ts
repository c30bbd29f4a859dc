/**
 * The worker side of OffThreadHashing (hashing-thread.ts): one SHA-256 state
 * per stream id, fed in order (a worker's messages arrive in the order they
 * were posted). Each update is answered with its own buffer, transferred
 * back for reuse: that is how the request thread counts the bytes in flight. Built into the binary as
 * a second entry point (scripts/build.ts).
 */
import type { HashReply, HashRequest } from "./hashing-thread";

declare const self: Worker;

const streams = new Map<number, Bun.CryptoHasher>();

self.onmessage = ({ data }: MessageEvent<HashRequest>) => {
  const { id } = data;
  if (data.op === "update") {
    let hasher = streams.get(id);
    if (!hasher) streams.set(id, (hasher = new Bun.CryptoHasher("sha256")));
    hasher.update(data.chunk);
    self.postMessage({ id, done: data.chunk } satisfies HashReply, [data.chunk.buffer as ArrayBuffer]);
  } else if (data.op === "digest") {
    const hasher = streams.get(id) ?? new Bun.CryptoHasher("sha256");
    streams.delete(id);
    self.postMessage({ id, digest: hasher.digest("hex") } satisfies HashReply);
  } else {
    streams.delete(id);
  }
};

/**
 * SHA-256 on a worker thread: a fill hands each chunk over (copied into a
 * buffer that is transferred, so the fill keeps its own bytes for its readers
 * and the disk) and goes on at once; the worker hashes while the request
 * thread writes to sockets and disk. The buffers travel back with the
 * worker's answer and are reused: fresh memory for every copy cost more than
 * the copy itself (page faults; `slice` was a fifth of a cold pull's
 * profile). One worker serves every fill of the process: one more busy core
 * is what there is to gain, where the machine has one to give (open-cache.ts
 * decides; on 2 cores it is a loss, BENCHMARKS.md, issue 17).
 *
 * Memory stays bounded: past MAX_IN_FLIGHT bytes handed over and not yet
 * hashed, `update` returns a promise, so a fill waits instead of queueing
 * copies. If the worker fails, every stream in progress fails with it (its
 * fill then commits nothing and cuts its clients) and the next stream starts
 * a new worker.
 */
import type { Hashing, Sha256Stream } from "./hashing";

export type HashRequest =
  | { op: "update"; id: number; chunk: Uint8Array }
  | { op: "digest"; id: number }
  | { op: "drop"; id: number };
export type HashReply = { id: number; done: Uint8Array } | { id: number; digest: string };

/**
 * The worker's code. In the compiled binary it is the second entry point (scripts/build.ts),
 * embedded under its path from the entry points' root, src/. A URL made from import.meta.url names
 * the build machine's source file there instead: the binary ran it from the checkout when there
 * was one, and in the container image every fill failed (ModuleNotFound). From source, that URL
 * is the file.
 */
const WORKER = Bun.main.startsWith("/$bunfs/") ? "./cache/hashing-worker.ts" : new URL("./hashing-worker.ts", import.meta.url).href;
/** The size of the buffers chunks are copied into (a larger chunk takes several). */
const BUFFER_BYTES = 256 * 1024;
/** Bytes handed to the worker and not yet hashed, per stream, beyond which the fill waits. */
const MAX_IN_FLIGHT = 8 * 1024 * 1024;
/** Idle buffers kept for reuse, at most (a few MiB: what one fast fill keeps in flight). */
const MOST_KEPT = 16;

interface Pending {
  inFlight: number;
  /** Resolved once inFlight drops below MAX_IN_FLIGHT / 2. */
  room?: PromiseWithResolvers<void>;
  digest?: PromiseWithResolvers<string>;
  failed?: Error;
}

export class OffThreadHashing implements Hashing {
  private worker: Worker | undefined;
  private readonly streams = new Map<number, Pending>();
  private readonly spare: ArrayBuffer[] = [];
  private nextId = 1;

  start(): Sha256Stream {
    const worker = (this.worker ??= this.spawn());
    const id = this.nextId++;
    const pending: Pending = { inFlight: 0 };
    this.streams.set(id, pending);
    const post = (message: HashRequest, transfer: ArrayBuffer[] = []) => worker.postMessage(message, transfer);
    return {
      update: (chunk) => {
        if (pending.failed) throw pending.failed;
        for (let offset = 0; offset < chunk.length; offset += BUFFER_BYTES) {
          const part = chunk.subarray(offset, offset + BUFFER_BYTES);
          const copy = new Uint8Array(this.spare.pop() ?? new ArrayBuffer(BUFFER_BYTES), 0, part.length);
          copy.set(part); // the fill keeps `chunk`; the copy's buffer moves to the worker and back
          pending.inFlight += part.length;
          post({ op: "update", id, chunk: copy }, [copy.buffer as ArrayBuffer]);
        }
        if (pending.inFlight <= MAX_IN_FLIGHT) return undefined;
        pending.room ??= Promise.withResolvers<void>();
        return pending.room.promise;
      },
      digest: () => {
        if (pending.failed) return Promise.reject(pending.failed);
        pending.digest = Promise.withResolvers<string>();
        post({ op: "digest", id });
        return pending.digest.promise;
      },
      drop: () => {
        if (!this.streams.delete(id) || pending.failed) return;
        post({ op: "drop", id });
      },
    };
  }

  /** Ends the worker (the process is stopping); streams in progress fail. */
  close(): void {
    this.fail(new Error("hashing stopped"));
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER);
    worker.unref(); // never what keeps the process alive
    worker.onmessage = ({ data }: MessageEvent<HashReply>) => this.answer(data);
    worker.onerror = (event) => this.fail(new Error(`hashing worker failed: ${event.message}`));
    return worker;
  }

  private answer(reply: HashReply): void {
    if ("done" in reply && this.spare.length < MOST_KEPT) this.spare.push(reply.done.buffer as ArrayBuffer);
    const pending = this.streams.get(reply.id);
    if (!pending) return;
    if ("digest" in reply) {
      this.streams.delete(reply.id);
      pending.digest?.resolve(reply.digest);
      return;
    }
    pending.inFlight -= reply.done.length;
    if (pending.room && pending.inFlight <= MAX_IN_FLIGHT / 2) {
      pending.room.resolve();
      pending.room = undefined;
    }
  }

  private fail(error: Error): void {
    this.worker?.terminate();
    this.worker = undefined;
    for (const pending of this.streams.values()) {
      pending.failed = error;
      pending.room?.reject(error);
      pending.digest?.reject(error);
    }
    this.streams.clear();
  }
}

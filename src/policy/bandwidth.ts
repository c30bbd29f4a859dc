/**
 * Bytes per second on blob streams, per client: one token bucket per key,
 * shared by every stream of that key, so two parallel layer downloads of one
 * client split its rate instead of doubling it.
 *
 * Throttling is backpressure, never buffering: the output pulls one source
 * chunk only when its reader asks, hands it on in slices, and waits before
 * each slice until the bucket can pay for it. What a stream holds is the rest
 * of one source chunk, whatever the blob's size.
 *
 * Each slice reserves its bytes when it is taken, so the bucket can go into
 * debt and concurrent streams queue behind one another's reservations in the
 * order they asked. Time comes from an injectable clock, which lets tests
 * replay a schedule exactly.
 */

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** performance.now, not Date.now: a wall clock set back would stall every stream. */
const systemClock: Clock = { now: () => performance.now(), sleep: (ms) => Bun.sleep(ms) };

/**
 * Longest a slice may take at the configured rate. It is also the bucket's
 * capacity, the most a key can send at once after being idle: enough to make
 * up for a timer firing late, too little to matter as a burst.
 */
const SLICE_MS = 50;

/** Unused buckets are looked for at most this often. */
const SWEEP_MS = 1000;

class Bucket {
  streams = 0;
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly capacity: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.updatedAt = now;
  }

  /** Reserves `bytes` and returns how many ms to wait before sending them. */
  take(bytes: number, now: number): number {
    this.refill(now);
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }

  /** Full again, hence no different from a new bucket. */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) * this.bytesPerSecond) / 1000);
    this.updatedAt = now;
  }
}

export class BandwidthLimiter {
  /** Bytes handed on per wait: small enough that the rate is smooth at SLICE_MS granularity. */
  readonly sliceBytes: number;
  private readonly buckets = new Map<string, Bucket>();
  private sweepAt = 0;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly clock: Clock = systemClock,
  ) {
    if (!(bytesPerSecond > 0 && Number.isFinite(bytesPerSecond))) throw new Error(`bandwidth limit must be a positive number of bytes per second: ${bytesPerSecond}`);
    this.sliceBytes = Math.max(1, Math.floor((bytesPerSecond * SLICE_MS) / 1000));
  }

  /**
   * `stream` at this key's rate. Cancelling the result cancels `stream`; an
   * error from `stream` errors the result.
   */
  throttle(key: string, stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = stream.getReader(); // first: a locked stream throws before the bucket counts it
    const bucket = this.acquire(key);
    let rest: Uint8Array = new Uint8Array(0);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      bucket.streams--;
    };
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            while (rest.length === 0) {
              const next = await reader.read();
              if (finished) return; // cancelled while reading
              if (next.done) {
                finish();
                return controller.close();
              }
              rest = next.value;
            }
            const slice = rest.subarray(0, this.sliceBytes);
            rest = rest.subarray(slice.length);
            const wait = bucket.take(slice.length, this.clock.now());
            if (wait > 0) await this.clock.sleep(wait);
            if (!finished) controller.enqueue(slice);
          } catch (error) {
            finish();
            throw error;
          }
        },
        cancel: (reason) => {
          finish();
          return reader.cancel(reason);
        },
      },
      // Nothing is read ahead: a slice is taken only for a reader waiting on it.
      { highWaterMark: 0 },
    );
  }

  /**
   * The key's bucket, made on first use. A bucket stays after its last
   * stream ends, until it has refilled: dropping it earlier would let a
   * client that opens one stream after another start each one full.
   */
  private acquire(key: string): Bucket {
    const now = this.clock.now();
    if (now >= this.sweepAt) {
      for (const [k, b] of this.buckets) if (b.streams === 0 && b.full(now)) this.buckets.delete(k);
      this.sweepAt = now + SWEEP_MS;
    }
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = new Bucket(this.bytesPerSecond, this.sliceBytes, now);
      this.buckets.set(key, bucket);
    }
    bucket.streams++;
    return bucket;
  }
}

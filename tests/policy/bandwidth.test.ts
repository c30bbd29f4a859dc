/**
 * The bandwidth limiter on a fake clock: every delivery time is asserted
 * exactly, with no wall-clock time involved. Covers slicing, a bucket shared
 * by two streams of one key, separate keys, backpressure on the source,
 * cancellation and errors.
 */
import { expect, test } from "bun:test";
import { BandwidthLimiter, type Clock } from "../../src/policy/bandwidth";

/** Lets every promise chain that can move on do so. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Time stands still until `run` fires the sleepers, earliest first. */
class FakeClock implements Clock {
  time = 0;
  private sleepers: { at: number; order: number; wake: () => void }[] = [];
  private order = 0;

  now(): number {
    return this.time;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((wake) => this.sleepers.push({ at: this.time + ms, order: this.order++, wake }));
  }

  get sleeping(): number {
    return this.sleepers.length;
  }

  /** Wakes every sleeper, in time order, including ones they lead to. */
  async wakeAll(): Promise<void> {
    for (;;) {
      await settle();
      if (!this.wakeNext()) return;
    }
  }

  /** Advances time sleeper by sleeper until `work` is done; fails if it waits on nothing. */
  async run<T>(work: Promise<T>): Promise<T> {
    let done = false;
    work.then(
      () => (done = true),
      () => (done = true),
    );
    for (let idle = 0; ; ) {
      await settle();
      if (done) return work;
      if (this.wakeNext()) idle = 0;
      else if (++idle > 50) throw new Error("stuck: the work waits and no sleeper is left");
    }
  }

  private wakeNext(): boolean {
    this.sleepers.sort((a, b) => a.at - b.at || a.order - b.order);
    const next = this.sleepers.shift();
    if (!next) return false;
    this.time = next.at;
    next.wake();
    return true;
  }
}

function bytes(length: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i + seed) % 256);
}

function source(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull(controller) {
      const chunk = chunks.shift();
      if (chunk) controller.enqueue(chunk);
      else controller.close();
    },
  });
}

type Delivery = [time: number, label: string, length: number];

/** Reads `stream` to the end, logging when each chunk arrived; returns the bytes. */
async function drain(clock: FakeClock, label: string, stream: ReadableStream<Uint8Array>, log: Delivery[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) {
    log.push([clock.now(), label, chunk.length]);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

test("a large chunk is handed on in slices, one slice's worth of time apart", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock); // 100 B/s: 5-byte slices, 50 ms each
  expect(limiter.sliceBytes).toBe(5);
  const log: Delivery[] = [];
  const data = bytes(20);
  const received = await clock.run(drain(clock, "a", limiter.throttle("client", source(data)), log));
  expect(received).toEqual(data);
  // The bucket starts with one slice: 20 bytes at 100 B/s end at 150 ms, not 200.
  expect(log).toEqual([
    [0, "a", 5],
    [50, "a", 5],
    [100, "a", 5],
    [150, "a", 5],
  ]);
});

test("small chunks go on whole, each waiting for what it costs", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock);
  const log: Delivery[] = [];
  await clock.run(drain(clock, "a", limiter.throttle("client", source(bytes(3), bytes(3), bytes(3), bytes(3))), log));
  // 3 of the 5 starting tokens, then 2 + 1 owed (10 ms), then 3 owed each time (30 ms).
  expect(log).toEqual([
    [0, "a", 3],
    [10, "a", 3],
    [40, "a", 3],
    [70, "a", 3],
  ]);
});

test("two streams of one key share its rate", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock);
  const log: Delivery[] = [];
  const [a, b] = await clock.run(
    Promise.all([
      drain(clock, "a", limiter.throttle("client", source(bytes(20, 1))), log),
      drain(clock, "b", limiter.throttle("client", source(bytes(20, 2))), log),
    ]),
  );
  expect(a).toEqual(bytes(20, 1));
  expect(b).toEqual(bytes(20, 2));
  // 40 bytes at 100 B/s, turn about: the last slice at 350 ms, as for one 40-byte stream.
  expect(log).toEqual([
    [0, "a", 5],
    [50, "b", 5],
    [100, "a", 5],
    [150, "b", 5],
    [200, "a", 5],
    [250, "b", 5],
    [300, "a", 5],
    [350, "b", 5],
  ]);
});

test("streams of different keys do not slow each other", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock);
  const log: Delivery[] = [];
  await clock.run(
    Promise.all([
      drain(clock, "a", limiter.throttle("one", source(bytes(10))), log),
      drain(clock, "b", limiter.throttle("two", source(bytes(10))), log),
    ]),
  );
  expect(log.filter(([, label]) => label === "a").map(([time]) => time)).toEqual([0, 50]);
  expect(log.filter(([, label]) => label === "b").map(([time]) => time)).toEqual([0, 50]);
});

test("a key's debt outlives its stream: the next stream does not start with a full bucket", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock);
  const log: Delivery[] = [];
  await clock.run(drain(clock, "first", limiter.throttle("client", source(bytes(20))), log));
  await clock.run(drain(clock, "second", limiter.throttle("client", source(bytes(10))), log));
  expect(log.slice(4)).toEqual([
    [200, "second", 5],
    [250, "second", 5],
  ]);
  // Once idle long enough to refill, the bucket is as good as new.
  clock.time += 10_000;
  const rested: Delivery[] = [];
  await clock.run(drain(clock, "third", limiter.throttle("client", source(bytes(10))), rested));
  expect(rested).toEqual([
    [10_250, "third", 5],
    [10_300, "third", 5],
  ]);
});

test("backpressure: the source is read only as the output is, one chunk at a time", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(1000, clock); // 50-byte slices
  let pulls = 0;
  let cancelledWith: unknown;
  const endless = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        pulls++;
        controller.enqueue(bytes(1000));
      },
      cancel(reason) {
        cancelledWith = reason;
      },
    },
    { highWaterMark: 0 },
  );
  const output = limiter.throttle("client", endless);
  await settle();
  expect(pulls).toBe(0); // nobody asked yet

  const reader = output.getReader();
  for (let i = 0; i < 20; i++) {
    const { value } = await clock.run(reader.read());
    expect(value).toHaveLength(50);
  }
  // 20 slices of 50 bytes are the first 1000-byte chunk: nothing more was taken.
  expect(pulls).toBe(1);
  await clock.run(reader.read());
  expect(pulls).toBe(2);
  expect(clock.time).toBe(1000); // 1050 bytes at 1000 B/s, less the 50 the bucket started with

  await reader.cancel("client went away");
  expect(cancelledWith).toBe("client went away");
});

test("cancelling while a slice waits cancels the source and delivers nothing more", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock);
  let cancelledWith: unknown;
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes(20));
    },
    cancel(reason) {
      cancelledWith = reason;
    },
  });
  const reader = limiter.throttle("client", input).getReader();
  await clock.run(reader.read()); // the free first slice
  const waiting = reader.read(); // the second slice sleeps for 50 ms
  await settle();
  expect(clock.sleeping).toBe(1);

  await reader.cancel("stop");
  expect(cancelledWith).toBe("stop");
  expect(await waiting).toEqual({ done: true, value: undefined });
  // The sleeper wakes into a cancelled stream and must not try to enqueue.
  await clock.wakeAll();
  expect(clock.sleeping).toBe(0);

  // The key's bucket carries on for the next stream; the cancelled slice's reservation stays spent.
  const log: Delivery[] = [];
  await clock.run(drain(clock, "next", limiter.throttle("client", source(bytes(5))), log));
  expect(log).toEqual([[100, "next", 5]]);
});

test("a source error errors the output", async () => {
  const clock = new FakeClock();
  const limiter = new BandwidthLimiter(100, clock);
  let sent = false;
  const failing = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.error(new Error("upstream reset"));
      sent = true;
      controller.enqueue(bytes(5));
    },
  });
  const log: Delivery[] = [];
  await expect(clock.run(drain(clock, "a", limiter.throttle("client", failing), log))).rejects.toThrow("upstream reset");
  expect(log).toEqual([[0, "a", 5]]);
});

test("a meaningless rate is refused", () => {
  for (const rate of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    expect(() => new BandwidthLimiter(rate)).toThrow("positive number of bytes per second");
  }
  expect(new BandwidthLimiter(1).sliceBytes).toBe(1); // never zero
});

/**
 * Where a fill keeps its bytes (cache/fill-spool.ts), against a temp file in
 * memory whose writes complete or fail when the test says: the newest bytes
 * come from memory while the disk writes behind, the download waits for a
 * slow disk, and after a disk failure the bytes not on disk come from a
 * bounded window. The fill around it: tests/cache/fill.test.ts.
 */
import { expect, test } from "bun:test";
import type { TempBlob } from "../../src/cache/blob-storage";
import { FillSpool } from "../../src/cache/fill-spool";

const MIB = 1024 * 1024;
const chunk = (value: number, length = MIB) => new Uint8Array(length).fill(value);

/** A temp file in memory: writes wait for `complete` or `fail`; `reads` counts reads of the file. */
class HeldTemp implements TempBlob {
  reads = 0;
  private file = new Uint8Array(0);
  private pending: { bytes: Uint8Array; resolve: () => void; reject: (error: Error) => void }[] = [];

  get pendingWrites(): number {
    return this.pending.length;
  }

  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.pending.push({ bytes, resolve, reject }));
  }

  /** Writes the oldest `count` pending chunks, in order. */
  complete(count = this.pending.length): void {
    for (const { bytes, resolve } of this.pending.splice(0, count)) {
      const grown = new Uint8Array(this.file.length + bytes.length);
      grown.set(this.file);
      grown.set(bytes, this.file.length);
      this.file = grown;
      resolve();
    }
  }

  /** Fails every pending write, like a full disk. */
  fail(): void {
    for (const { reject } of this.pending.splice(0)) reject(new Error("ENOSPC: no space left on device"));
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    this.reads++;
    return this.file.slice(position, position + length);
  }

  async commit(): Promise<void> {}
  async abort(): Promise<void> {}
}

test("a followed fill's newest bytes come from memory while the disk writes behind; the download waits once 4 MiB are unwritten", async () => {
  const temp = new HeldTemp();
  let writtenCalls = 0;
  const spool = new FillSpool(temp, { followed: () => true, written: () => writtenCalls++ });
  for (let i = 0; i < 4; i++) await spool.append(i * MIB, chunk(i));
  expect(await spool.read(MIB + 5, 10)).toEqual(chunk(1, 10));
  expect(await spool.read(0, MIB)).toEqual(chunk(0, 256 * 1024)); // one piece at a time, at most 256 KiB
  expect(temp.reads).toBe(0);

  let appended = false;
  const fifth = spool.append(4 * MIB, chunk(4)).then(() => (appended = true));
  await Bun.sleep(20);
  expect(appended).toBe(false);
  temp.complete(1);
  await fifth;
  expect(writtenCalls).toBe(1);
  temp.complete();
  await spool.flushed();
  expect({ writtenCalls, diskFailed: spool.diskFailed }).toEqual({ writtenCalls: 5, diskFailed: false });
});

test("with nobody following, only the bytes not on disk yet stay in memory; earlier ones are read from the temp file", async () => {
  const temp = new HeldTemp();
  const spool = new FillSpool(temp, { followed: () => false, written: () => undefined });
  await spool.append(0, chunk(1));
  temp.complete();
  await spool.flushed();
  await spool.append(MIB, chunk(2));
  expect(await spool.read(MIB, 10)).toEqual(chunk(2, 10));
  expect(temp.reads).toBe(0);
  expect(await spool.read(10, 10)).toEqual(chunk(1, 10));
  expect(temp.reads).toBe(1);
});

test("after a disk failure the bytes not on disk come from the window, which is full beyond 8 MiB until the slowest reader moves on", async () => {
  const temp = new HeldTemp();
  const spool = new FillSpool(temp, { followed: () => true, written: () => undefined });
  await spool.append(0, chunk(0));
  temp.complete();
  await spool.flushed();
  await spool.append(MIB, chunk(1));
  temp.fail();
  await spool.flushed();
  expect(spool.diskFailed).toBe(true);
  for (let i = 2; i < 10; i++) await spool.append(i * MIB, chunk(i));
  expect(temp.pendingWrites).toBe(0); // nothing more goes to the failed disk

  expect(await spool.read(MIB, 10)).toEqual(chunk(1, 10));
  expect(await spool.read(9 * MIB, 10)).toEqual(chunk(9, 10));
  expect(temp.reads).toBe(0);
  expect(await spool.read(0, 10)).toEqual(chunk(0, 10)); // on disk before the failure
  expect(temp.reads).toBe(1);

  expect(spool.windowFull).toBe(true);
  spool.dropWindowBefore(2 * MIB);
  expect(spool.windowFull).toBe(false);
  expect(await spool.read(MIB, 10)).toEqual(new Uint8Array(0));
});

/**
 * The in-process coordination (cache/local-coordination.ts): one claim per
 * digest, joiners get the fill the claimer hands over (or undefined when it
 * could not start), and a named job runs once at a time.
 */
import { expect, test } from "bun:test";
import type { FillInProgress } from "../../src/cache/coordination";
import { LocalCoordination } from "../../src/cache/local-coordination";

const DIGEST = "sha256:" + "a".repeat(64);
const fill: FillInProgress = { size: 3, joinable: true, read: () => new Response("abc").body! };

test("the first claim wins; joiners wait for the fill it hands over; release frees the digest", async () => {
  const coordination = new LocalCoordination();
  expect(coordination.join(DIGEST)).toBeUndefined();
  const claim = coordination.claim(DIGEST)!;
  expect(claim).toBeDefined();
  expect(coordination.claim(DIGEST)).toBeUndefined();
  expect(coordination.isFilling(DIGEST)).toBe(true);
  expect(coordination.fillsInProgress).toBe(1);
  const joined = coordination.join(DIGEST)!;
  claim.started(fill);
  expect(await joined).toBe(fill);
  expect(coordination.isFilling(DIGEST)).toBe(true); // until the fill settles
  claim.release();
  claim.release();
  expect(coordination.isFilling(DIGEST)).toBe(false);
  expect(coordination.fillsInProgress).toBe(0);
  expect(coordination.claim(DIGEST)).toBeDefined();
});

test("a claim whose fill could not start ends at once, and its joiners learn it", async () => {
  const coordination = new LocalCoordination();
  const claim = coordination.claim(DIGEST)!;
  const joined = coordination.join(DIGEST)!;
  claim.started(undefined);
  expect(await joined).toBeUndefined();
  expect(coordination.isFilling(DIGEST)).toBe(false);
});

test("a release of an old claim leaves a newer claim of the same digest alone", () => {
  const coordination = new LocalCoordination();
  const old = coordination.claim(DIGEST)!;
  old.release();
  coordination.claim(DIGEST);
  old.release();
  expect(coordination.isFilling(DIGEST)).toBe(true);
});

test("exclusive runs a named job once at a time: a second holder is turned away, not queued", async () => {
  const coordination = new LocalCoordination();
  let finish!: () => void;
  const first = coordination.exclusive("eviction", () => new Promise<string>((resolve) => (finish = () => resolve("ran"))));
  expect(await coordination.exclusive("eviction", async () => "second")).toBeUndefined();
  expect(await coordination.exclusive("other", async () => "other")).toBe("other");
  finish();
  expect(await first).toBe("ran");
  expect(await coordination.exclusive("eviction", async () => "again")).toBe("again");
});

/**
 * The in-process coordination (cache/local-coordination.ts): one claim per
 * digest, later claimers and joiners get the fill the claimer hands over (or
 * undefined when it could not start), and a named job runs once at a time.
 */
import { expect, test } from "bun:test";
import type { ClaimResult, FillClaim, FillInProgress } from "../../src/cache/coordination";
import { LocalCoordination } from "../../src/cache/local-coordination";

const DIGEST = "sha256:" + "a".repeat(64);
const fill: FillInProgress = { size: 3, joinable: true, read: () => new Response("abc").body! };

function won(result: ClaimResult): FillClaim {
  if (!("claim" in result)) throw new Error("expected to win the claim");
  return result.claim;
}

test("the first claim wins; later claims and joiners wait for the fill it hands over; release frees the digest", async () => {
  const coordination = new LocalCoordination();
  expect(coordination.join(DIGEST)).toBeUndefined();
  const claim = won(await coordination.claim(DIGEST));
  const second = coordination.claim(DIGEST);
  expect(coordination.isFilling(DIGEST)).toBe(true);
  expect(coordination.fillsInProgress).toBe(1);
  const joined = coordination.join(DIGEST)!;
  claim.started(fill);
  expect(await joined).toBe(fill);
  expect(await second).toEqual({ joined: fill });
  expect(coordination.isFilling(DIGEST)).toBe(true); // until the fill settles
  claim.release();
  claim.release();
  expect(coordination.isFilling(DIGEST)).toBe(false);
  expect(coordination.fillsInProgress).toBe(0);
  expect("claim" in (await coordination.claim(DIGEST))).toBe(true);
});

test("claims made at the same time: exactly one wins", async () => {
  const coordination = new LocalCoordination();
  const results = [coordination.claim(DIGEST), coordination.claim(DIGEST), coordination.claim(DIGEST)];
  const first = won(await results[0]!);
  first.started(fill);
  const all = await Promise.all(results);
  expect(all.filter((r) => "claim" in r)).toHaveLength(1);
  expect(all.slice(1)).toEqual([{ joined: fill }, { joined: fill }]);
});

test("a claim whose fill could not start ends at once, and its joiners learn it", async () => {
  const coordination = new LocalCoordination();
  const claim = won(await coordination.claim(DIGEST));
  const joined = coordination.join(DIGEST)!;
  claim.started(undefined);
  expect(await joined).toBeUndefined();
  expect(coordination.isFilling(DIGEST)).toBe(false);
});

test("a release of an old claim leaves a newer claim of the same digest alone", async () => {
  const coordination = new LocalCoordination();
  const old = won(await coordination.claim(DIGEST));
  old.release();
  won(await coordination.claim(DIGEST));
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

/** `Range` for cached blobs (cache/range.ts): one range, clamped to the blob, or unsatisfiable, or ignored. */
import { expect, test } from "bun:test";
import { parseRange } from "../../src/cache/range";

test("first-last, open-ended and suffix ranges, clamped to the blob", () => {
  expect(parseRange("bytes=0-9", 100)).toEqual([0, 9]);
  expect(parseRange("bytes=90-", 100)).toEqual([90, 99]);
  expect(parseRange("bytes=90-500", 100)).toEqual([90, 99]);
  expect(parseRange("bytes=-10", 100)).toEqual([90, 99]);
  expect(parseRange("bytes=-500", 100)).toEqual([0, 99]);
});

test("ranges past the end, reversed or of zero suffix are unsatisfiable", () => {
  expect(parseRange("bytes=100-", 100)).toBe("unsatisfiable");
  expect(parseRange("bytes=9-3", 100)).toBe("unsatisfiable");
  expect(parseRange("bytes=-0", 100)).toBe("unsatisfiable");
});

test("no header, several ranges or another unit mean the whole blob", () => {
  expect(parseRange(null, 100)).toBeUndefined();
  expect(parseRange("bytes=0-1,5-6", 100)).toBeUndefined();
  expect(parseRange("items=0-1", 100)).toBeUndefined();
  expect(parseRange("bytes=-", 100)).toBeUndefined();
});

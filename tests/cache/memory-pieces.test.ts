/** A fill's bytes in memory (cache/memory-pieces.ts): views into the chunks at their offsets, dropped oldest first. */
import { expect, test } from "bun:test";
import { MemoryPieces } from "../../src/cache/memory-pieces";

const bytes = (from: number, length: number) => Uint8Array.from({ length }, (_, i) => from + i);

test("slices are views into the piece holding the position, at most to its end", () => {
  const pieces = new MemoryPieces();
  pieces.push(0, bytes(0, 10));
  pieces.push(10, bytes(10, 5));
  expect(pieces.size).toBe(15);
  expect(pieces.slice(3, 4)).toEqual(bytes(3, 4));
  expect(pieces.slice(8, 100)).toEqual(bytes(8, 2));
  expect(pieces.slice(12, 100)).toEqual(bytes(12, 3));
  expect(pieces.slice(15, 1)).toBeUndefined();
});

test("dropBefore keeps a piece still partly needed; dropOldestWhile stops when told", () => {
  const pieces = new MemoryPieces();
  for (let at = 0; at < 40; at += 10) pieces.push(at, bytes(at, 10));
  pieces.dropBefore(15);
  expect(pieces.size).toBe(30);
  expect(pieces.slice(5, 1)).toBeUndefined();
  expect(pieces.slice(12, 1)).toEqual(bytes(12, 1));
  pieces.dropOldestWhile((_, held, count) => held > 10 && count > 1);
  expect(pieces.size).toBe(10);
  expect(pieces.slice(30, 10)).toEqual(bytes(30, 10));
  pieces.clear();
  expect(pieces.size).toBe(0);
});

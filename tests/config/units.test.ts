/** The size and duration syntax of the configuration (what load.test.ts sees decoded per key). */
import { expect, test } from "bun:test";
import { formatSize, parseDuration, parseSize } from "../../src/config/units";

const shown = (input: string | number) => (typeof input === "string" ? JSON.stringify(input) : String(input));

test("parseSize: bytes from numbers and unit suffixes", () => {
  const table: [string | number, number][] = [
    [0, 0],
    [1234, 1234],
    ["1234", 1234],
    ["512B", 512],
    ["50GiB", 50 * 1024 ** 3],
    ["500MB", 500_000_000],
    ["1.5G", 1.5 * 1024 ** 3],
    ["1.5g", 1.5 * 1024 ** 3],
    ["10 mib", 10 * 1024 ** 2],
    ["2k", 2048],
    ["2KB", 2000],
    ["1TiB", 1024 ** 4],
    ["3TB", 3e12],
    [" 7M ", 7 * 1024 ** 2],
    [".5K", 512],
  ];
  for (const [input, bytes] of table) expect([input, parseSize(input)]).toEqual([input, bytes]);
});

test("parseSize: anything else is a clear error", () => {
  for (const input of ["", "GiB", "-1G", "1.5.5G", "10 XB", "1e3", "ten", "1 G B", -5, Number.NaN, Number.POSITIVE_INFINITY, "9".repeat(400)]) {
    expect(() => parseSize(input)).toThrow(`invalid size ${shown(input)}: expected "50GiB", "500MB", "1.5G" or a number of bytes`);
  }
});

test("parseDuration: milliseconds from seconds and unit suffixes", () => {
  const table: [string | number, number][] = [
    [0, 0],
    [30, 30_000],
    ["30", 30_000],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["7d", 604_800_000],
    ["1.5h", 5_400_000],
    ["0.5s", 500],
    ["7D", 604_800_000],
  ];
  for (const [input, ms] of table) expect([input, parseDuration(input)]).toEqual([input, ms]);
});

test("parseDuration: anything else is a clear error", () => {
  for (const input of ["", "s", "-5m", "5 minutes", "1w", "5ms", "1h30m", -1, Number.NaN]) {
    expect(() => parseDuration(input)).toThrow(`invalid duration ${shown(input)}: expected "30s", "5m", "2h", "7d" or a number of seconds`);
  }
});

test("formatSize: bytes in the largest unit that divides them exactly, as check-config prints the cache's maximum", () => {
  const table: [number, string][] = [
    [20 * 1024 ** 3, "20GiB"],
    [500_000_000, "500MB"],
    [1.5 * 1024 ** 3, "1536MiB"],
    [3e12, "3TB"],
    [2048, "2KiB"],
    [1234, "1234B"],
    [0, "0B"],
  ];
  for (const [bytes, text] of table) expect([bytes, formatSize(bytes)]).toEqual([bytes, text]);
  for (const text of ["20GiB", "500MB", "7M", "1TiB"]) expect(parseSize(formatSize(parseSize(text)))).toBe(parseSize(text));
});

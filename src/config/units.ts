/**
 * The size and duration syntax of the configuration. The schema decodes
 * every such key with these when the configuration is loaded (schema.ts), so
 * the rest of docxy only ever sees bytes and milliseconds.
 */
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

const DURATION_UNITS: Record<string, number> = { "": 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Bytes from a number (bytes) or text such as "50GiB", "500MB", "1.5G".
 * `KiB`/`MiB`/… and the bare letters (as in `docker run --memory 1.5g`) are
 * powers of 1024, `KB`/`MB`/… powers of 1000. Case does not matter.
 */
export function parseSize(value: string | number): number {
  return parseQuantity(value, SIZE_UNITS, "size", '"50GiB", "500MB", "1.5G" or a number of bytes');
}

/** Milliseconds from a number (seconds) or text such as "30s", "5m", "2h", "7d". */
export function parseDuration(value: string | number): number {
  return parseQuantity(value, DURATION_UNITS, "duration", '"30s", "5m", "2h", "7d" or a number of seconds');
}

function parseQuantity(value: string | number, units: Record<string, number>, what: string, examples: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(String(value));
  const factor = match ? units[match[2]!.toLowerCase()] : undefined;
  if (!match || factor === undefined || !Number.isFinite(Number(match[1]) * factor)) {
    throw new Error(`invalid ${what} ${typeof value === "string" ? JSON.stringify(value) : value}: expected ${examples}`);
  }
  return Math.round(Number(match[1]) * factor);
}

const SIZE_NAMES: [string, number][] = [
  ["TiB", 1024 ** 4],
  ["TB", 1000 ** 4],
  ["GiB", 1024 ** 3],
  ["GB", 1000 ** 3],
  ["MiB", 1024 ** 2],
  ["MB", 1000 ** 2],
  ["KiB", 1024],
  ["KB", 1000],
];

/** Bytes as an operator would have written them ("20GiB", "500MB"): the largest unit that divides them exactly. */
export function formatSize(bytes: number): string {
  const [name, factor] = SIZE_NAMES.find(([, factor]) => bytes > 0 && bytes % factor === 0) ?? ["B", 1];
  return `${bytes / factor}${name}`;
}

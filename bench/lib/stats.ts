/**
 * Samples, comparisons and the result table. Every comparison is a ratio of
 * two medians measured in the same run (the machines are shared and noisy),
 * and every target is checked against that ratio or, for absolute bounds
 * such as RSS, against the median itself; a target marked `every` must hold
 * in each run instead (the worst run decides), for what a user would see as
 * a regression even once.
 */

export interface Measure {
  /** what was measured, e.g. "docxy cold" or "distribution proxy hit" */
  name: string;
  unit: string;
  samples: number[];
}

export interface Target {
  /** human wording, e.g. "≥ 1.3× distribution" */
  text: string;
  /** which number is checked: the ratio a/b or a's value */
  on: "ratio" | "value";
  /**
   * Checked in each run rather than on the medians: every one of a's samples (a count that must
   * hold in each run), or every run's ratio a[i]/b[i] (samples are paired by `alternate`).
   */
  every?: boolean;
  min?: number;
  max?: number;
}

export interface Row {
  scenario: string;
  a: Measure;
  /** the baseline; absent for absolute measures (RSS, fetch counts) */
  b?: Measure;
  target?: Target;
  note?: string;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const ratio = (row: Row): number | undefined => (row.b ? median(row.a.samples) / median(row.b.samples) : undefined);

/** Each run's ratio a[i]/b[i]; a and b were measured in the same repetition, so they pair by index. */
function pairedRatios(row: Row): number[] {
  const b = row.b?.samples ?? [];
  if (b.length !== row.a.samples.length) return [];
  return row.a.samples.map((x, i) => x / b[i]!);
}

/** The values a target checks: one (a median or the ratio of medians), or one per run with `every`. */
function checked(row: Row, t: Target): number[] {
  if (t.on === "ratio") return t.every ? pairedRatios(row) : [ratio(row) ?? NaN];
  return t.every ? row.a.samples : [median(row.a.samples)];
}

/** The run a per-run target is judged by: the lowest ratio for a floor, the highest for a ceiling. */
function worst(row: Row): number | undefined {
  const t = row.target;
  if (!t?.every || t.on !== "ratio") return undefined;
  const xs = checked(row, t);
  if (xs.length === 0) return undefined;
  return t.min !== undefined ? Math.min(...xs) : Math.max(...xs);
}

export type Verdict = "met" | "missed" | "";

export function verdict(row: Row): Verdict {
  const t = row.target;
  if (!t) return "";
  // NaN fails both comparisons, so a missing measurement is a miss.
  const ok = (x: number) => (t.min === undefined || x >= t.min) && (t.max === undefined || x <= t.max);
  const xs = checked(row, t);
  return xs.length > 0 && xs.every(ok) ? "met" : "missed";
}

function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

/** "812 MB/s (790–840)"; the range is left out for a single sample. */
export function describe(m: Measure): string {
  if (m.samples.length === 0) return "—";
  const med = `${num(median(m.samples))}${m.unit ? ` ${m.unit}` : ""}`;
  if (m.samples.length === 1) return med;
  return `${med} (${num(Math.min(...m.samples))}–${num(Math.max(...m.samples))})`;
}

function cells(row: Row): string[] {
  const r = ratio(row);
  const w = worst(row);
  const v = verdict(row);
  return [
    row.scenario,
    `${row.a.name}: ${describe(row.a)}`,
    row.b ? `${row.b.name}: ${describe(row.b)}` : "—",
    // a per-run target is judged by its worst run, so that run's ratio is shown next to the median's
    r === undefined ? "—" : `${num(r)}×${w === undefined || row.a.samples.length < 2 ? "" : ` (worst run ${num(w)}×)`}`,
    row.target ? `${row.target.text}: **${v}**` : "—",
  ];
}

const HEADER = ["scenario", "docxy: median (min–max)", "baseline: median (min–max)", "ratio", "target"];

export function markdownTable(rows: Row[]): string {
  const lines = [`| ${HEADER.join(" | ")} |`, `|${HEADER.map(() => "---").join("|")}|`];
  for (const row of rows) lines.push(`| ${cells(row).map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`);
  return lines.join("\n");
}

/** The same table for a terminal: aligned columns, no markdown emphasis. */
export function textTable(rows: Row[]): string {
  const all = [HEADER, ...rows.map((r) => cells(r).map((c) => c.replaceAll("**", "")))];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  return [line(HEADER), widths.map((w) => "-".repeat(w)).join("  "), ...all.slice(1).map(line)].join("\n");
}

/** Runs `variants` `reps` times, alternating their order each repetition (A B, B A, ...). */
export async function alternate(reps: number, variants: (() => Promise<void>)[]): Promise<void> {
  for (let i = 0; i < reps; i++) {
    const order = i % 2 === 0 ? variants : [...variants].reverse();
    for (const run of order) await run();
  }
}

/**
 * Samples, comparisons and the result table. Every comparison is a ratio of
 * two medians measured in the same run (the machines are shared and noisy),
 * and every target is checked against that ratio or, for absolute bounds
 * such as RSS, against the median itself.
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
  /** which number is checked: the ratio a/b, a's median, or every one of a's samples (a count that must hold in each run) */
  on: "ratio" | "value" | "every";
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

export type Verdict = "met" | "missed" | "";

export function verdict(row: Row): Verdict {
  const t = row.target;
  if (!t) return "";
  if (t.on === "every") {
    const ok = (x: number) => (t.min === undefined || x >= t.min) && (t.max === undefined || x <= t.max);
    return row.a.samples.length > 0 && row.a.samples.every(ok) ? "met" : "missed";
  }
  const x = t.on === "ratio" ? ratio(row) : median(row.a.samples);
  if (x === undefined || Number.isNaN(x)) return "missed";
  if (t.min !== undefined && !(x >= t.min)) return "missed";
  if (t.max !== undefined && !(x <= t.max)) return "missed";
  return "met";
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
  const v = verdict(row);
  return [
    row.scenario,
    `${row.a.name}: ${describe(row.a)}`,
    row.b ? `${row.b.name}: ${describe(row.b)}` : "—",
    r === undefined ? "—" : `${num(r)}×`,
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

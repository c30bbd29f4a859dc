/**
 * Downloads with curl, the same client for every target: body to /dev/null,
 * the response head kept (to check X-Cache), time from start to last byte.
 */
import { $ } from "bun";

export interface Download {
  status: number;
  bytes: number;
  /** seconds, connect to last byte (curl's time_total; over every redirect with `follow`) */
  seconds: number;
  /** decimal MB/s: bytes / seconds / 1e6 */
  mbps: number;
  /** lower-case response headers of the last response */
  headers: Record<string, string>;
}

const FORMAT = "\nCURL %{http_code} %{size_download} %{time_total}\n";

export function curlArgs(url: string, options: { authorization?: string; follow?: boolean; limitRate?: string; maxTime?: number } = {}): string[] {
  const args = ["curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", FORMAT];
  if (options.authorization) args.push("-H", `Authorization: ${options.authorization}`);
  if (options.follow) args.push("-L"); // curl does not send our Authorization to another host:port
  if (options.limitRate) args.push("--limit-rate", options.limitRate);
  if (options.maxTime) args.push("--max-time", String(options.maxTime));
  args.push(url);
  return args;
}

export function parseCurl(out: string): Download {
  const m = /CURL (\d+) (\d+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`unexpected curl output:\n${out.slice(-500)}`);
  const heads = out.slice(0, m.index).split(/\r?\n\r?\n/).filter((h) => h.startsWith("HTTP/"));
  const headers: Record<string, string> = {};
  for (const line of (heads.at(-1) ?? "").split(/\r?\n/).slice(1)) {
    const at = line.indexOf(":");
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  const bytes = Number(m[2]);
  const seconds = Number(m[3]);
  return { status: Number(m[1]), bytes, seconds, mbps: bytes / seconds / 1e6, headers };
}

/** One GET; throws unless it is a 200 with `expectBytes` bytes. */
export async function download(
  url: string,
  expectBytes: number,
  options: { authorization?: string; follow?: boolean; expectCache?: string } = {},
): Promise<Download> {
  const out = await $`${curlArgs(url, options)}`.quiet().nothrow().text();
  const d = parseCurl(out);
  if (d.status !== 200 || d.bytes !== expectBytes) throw new Error(`GET ${url}: HTTP ${d.status}, ${d.bytes} of ${expectBytes} bytes`);
  if (options.expectCache !== undefined && d.headers["x-cache"] !== options.expectCache) {
    throw new Error(`GET ${url}: X-Cache ${d.headers["x-cache"] ?? "(none)"}, expected ${options.expectCache}`);
  }
  return d;
}

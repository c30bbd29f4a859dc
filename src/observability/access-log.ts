/**
 * One line per request, for operators and audits: a JSON object per line
 * (journald, Loki and `jq` read it as is), or logfmt text. It is built from
 * named fields only — never from request headers — so credentials and tokens
 * cannot end up in it; the token endpoint's query (which names the account)
 * is left out too.
 */
export type AccessLogFormat = "json" | "text" | "off";

export interface AccessEntry {
  client: string;
  user?: string;
  method: string;
  path: string;
  query?: string;
  registry?: string;
  repository?: string;
  status: number;
  bytes: number;
  ms: number;
  cache?: string;
  /** The upstream origin that answered (its URL): the upstream's own, or a fallback's when one stood in. */
  source?: string;
  /**
   * false when the connection ended before the whole response was written;
   * absent where the server cannot tell (the sendfile port: the kernel sends the file)
   */
  complete?: boolean;
}

export function createAccessLog(format: AccessLogFormat, write: (line: string) => void = (line) => process.stderr.write(line)) {
  return function logAccess(entry: AccessEntry): void {
    if (format === "off") return;
    const time = new Date().toISOString();
    if (format === "json") {
      write(`${JSON.stringify({ time, level: "info", msg: "request", ...entry })}\n`);
      return;
    }
    let line = `time=${time} level=info msg=request`;
    for (const [key, value] of Object.entries(entry)) {
      if (value === undefined || value === "") continue;
      const text = String(value);
      line += ` ${key}=${/^[A-Za-z0-9._:/@+=&%,-]+$/.test(text) ? text : JSON.stringify(text)}`;
    }
    write(`${line}\n`);
  };
}

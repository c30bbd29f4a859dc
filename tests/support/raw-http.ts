/**
 * One HTTP/1.1 exchange over a raw socket, for assertions fetch hides:
 * whether a body was framed by Content-Length or chunked, and whether the
 * connection ended before the announced length arrived.
 */
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** Bytes after the head, still framed (chunked bodies keep their chunk lines). */
  body: Buffer;
  /** True when the server closed the connection (FIN or reset) before `content-length` bytes arrived. */
  truncated: boolean;
}

/** `onHead` runs once the response head has arrived, while its body may still be on its way. */
export function rawRequest(
  url: string,
  method = "GET",
  headers: Record<string, string> = {},
  payload?: Buffer,
  onHead?: () => void,
): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(target.port), target.hostname);
    const chunks: Buffer[] = [];
    const lines = [`${method} ${target.pathname}${target.search} HTTP/1.1`, `host: ${headers.host ?? target.host}`, "connection: close"];
    for (const [k, v] of Object.entries(headers)) if (k !== "host") lines.push(`${k}: ${v}`);
    socket.on("connect", () => {
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (payload) socket.write(payload);
    });
    let headSeen = false;
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (!headSeen && onHead && Buffer.concat(chunks).includes("\r\n\r\n")) {
        headSeen = true;
        onHead();
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf("\r\n\r\n");
      if (split < 0) return reject(new Error(`no HTTP head in ${JSON.stringify(all.toString().slice(0, 200))}`));
      const [statusLine, ...headerLines] = all.subarray(0, split).toString().split("\r\n");
      const parsed: Record<string, string> = {};
      for (const line of headerLines) {
        const at = line.indexOf(":");
        parsed[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
      const body = all.subarray(split + 4);
      const declared = parsed["content-length"];
      const expected = method === "HEAD" || declared === undefined ? undefined : Number(declared);
      resolve({
        status: Number(statusLine!.split(" ")[1]),
        headers: parsed,
        body,
        truncated: expected !== undefined && body.length < expected,
      });
    });
  });
}

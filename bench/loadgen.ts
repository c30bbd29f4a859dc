/**
 * A keep-alive HTTP/1.1 load generator for HEAD (and GET) requests, run as a
 * process of its own: `bun bench/loadgen.ts '<json options>'` prints one JSON
 * result line. It exists because wrk 4.1 cannot do HEAD: its parser waits
 * for the Content-Length bytes that a HEAD response never sends, so a HEAD
 * run completes 0 requests. (ab handles HEAD but only keeps a connection
 * alive when the header is spelled `Content-Length`, and docxy's node:http
 * listener sends `content-length`.) Like wrk: N connections, one request in
 * flight on each, for a fixed duration; latency of every request recorded.
 */

export interface LoadOptions {
  url: string;
  method: "HEAD" | "GET";
  headers: Record<string, string>;
  connections: number;
  seconds: number;
  /** not measured: lets connections open and JITs warm up */
  warmupSeconds?: number;
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
  /** responses whose status was not 2xx */
  errors: number;
  statuses: Record<string, number>;
}

const CRLF2 = Buffer.from("\r\n\r\n");

async function run(opts: LoadOptions): Promise<LoadResult> {
  const url = new URL(opts.url);
  const lines = [`${opts.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, "User-Agent: docxy-bench", ...Object.entries(opts.headers).map(([k, v]) => `${k}: ${v}`)];
  const request = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let stopping = false;
  const start = performance.now();
  const warmEnd = start + (opts.warmupSeconds ?? 0) * 1000;
  const end = warmEnd + opts.seconds * 1000;

  const connection = () =>
    new Promise<void>((resolve, reject) => {
      let buffer = Buffer.alloc(0);
      let sentAt = 0;
      let bodyLeft = -1; // -1: reading the head
      const send = (socket: { write(b: Uint8Array): number; end(): void }) => {
        if (performance.now() >= end || stopping) {
          socket.end();
          resolve();
          return;
        }
        sentAt = performance.now();
        socket.write(request);
      };
      const finish = (socket: { write(b: Uint8Array): number; end(): void }, status: string) => {
        const now = performance.now();
        if (sentAt >= warmEnd) {
          latencies.push(now - sentAt);
          statuses[status] = (statuses[status] ?? 0) + 1;
        }
        send(socket);
      };
      let status = "";
      void Bun.connect({
        hostname: url.hostname,
        port: Number(url.port),
        socket: {
          open(socket) {
            socket.setNoDelay(true);
            send(socket);
          },
          data(socket, chunk) {
            buffer = buffer.length ? Buffer.concat([buffer, chunk]) : Buffer.from(chunk);
            for (;;) {
              if (bodyLeft < 0) {
                const at = buffer.indexOf(CRLF2);
                if (at < 0) return;
                const head = buffer.subarray(0, at).toString("latin1");
                status = head.slice(9, 12);
                const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
                bodyLeft = opts.method === "HEAD" ? 0 : Number(cl?.[1] ?? 0);
                buffer = buffer.subarray(at + 4);
              }
              if (buffer.length < bodyLeft) return;
              buffer = buffer.subarray(bodyLeft);
              bodyLeft = -1;
              finish(socket, status);
              if (buffer.length === 0) return;
            }
          },
          close() {
            resolve();
          },
          error(_socket, err) {
            reject(err);
          },
          connectError(_socket, err) {
            reject(err);
          },
        },
      }).catch(reject);
    });

  await Promise.all(Array.from({ length: opts.connections }, connection));
  stopping = true;
  const elapsed = (performance.now() - Math.max(start, warmEnd)) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  const errors = Object.entries(statuses)
    .filter(([s]) => !s.startsWith("2"))
    .reduce((n, [, c]) => n + c, 0);
  return { requests: latencies.length, rps: latencies.length / elapsed, p50ms: pct(50), p99ms: pct(99), maxms: latencies.at(-1) ?? NaN, errors, statuses };
}

/** Runs the generator in a child process, so it does not share an event loop with the upstream's CDN. */
export async function loadgen(opts: LoadOptions): Promise<LoadResult> {
  const child = Bun.spawn([process.execPath, import.meta.path, JSON.stringify(opts)], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`loadgen failed (${code}): ${err}`);
  return JSON.parse(out) as LoadResult;
}

if (import.meta.main) {
  const result = await run(JSON.parse(process.argv[2]!) as LoadOptions);
  console.log(JSON.stringify(result));
}

/**
 * A fault switch in front of an upstream (the real registry, its token
 * service, or a fake): a raw-TCP forwarder that passes connections through
 * byte for byte, or makes the upstream misbehave as it does in real outages:
 * answer every request with one status (429 with Retry-After, 500, 503, ...),
 * accept and never answer (a hung upstream, past docxy's timeouts), close the
 * connection after reading the request, or refuse connections altogether.
 *
 * Raw TCP, not Bun.serve: passing through must keep the upstream's exact
 * framing (Content-Length on HEAD and streamed bodies, which Bun.serve drops).
 * Flipping the switch destroys every open connection, so a keep-alive
 * connection docxy pooled while passing cannot slip past the new mode.
 */
import { afterAll, beforeAll } from "bun:test";
import { connect, createServer, type Server, type Socket } from "node:net";
import { startFakeRegistry, type FakeHandler, type FakeRegistry } from "./cache/fake-registry";

export type TroubleMode =
  | { kind: "pass" }
  | { kind: "status"; status: number; retryAfter?: string }
  | { kind: "hang" }
  | { kind: "close" }
  | { kind: "refuse" };

export interface Trouble {
  /** http://127.0.0.1:PORT: the upstream's URL as docxy must see it */
  url: string;
  /** `target` with its origin replaced by the switch's (`http://x:1/token` → `http://127.0.0.1:PORT/token`) */
  via(target: string): string;
  set(mode: TroubleMode): Promise<void>;
  /** request lines ("GET /v2/") that met a fault, in arrival order */
  faulted: string[];
  stop(): Promise<void>;
}

const REASONS: Record<number, string> = { 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };

export async function startTrouble(target: string): Promise<Trouble> {
  const to = new URL(target);
  let mode: TroubleMode = { kind: "pass" };
  const sockets = new Set<Socket>();
  const faulted: string[] = [];
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };

  const server: Server = createServer((socket) => {
    track(socket);
    const current = mode;
    if (current.kind === "pass") {
      const upstream = connect(Number(to.port), to.hostname);
      track(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on("close", () => upstream.destroy());
      upstream.on("close", () => socket.destroy());
      return;
    }
    let head = "";
    socket.on("data", (chunk: Buffer) => {
      if (head.includes("\r\n\r\n")) return;
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const line = head.slice(0, head.indexOf("\r\n")).split(" ").slice(0, 2).join(" ");
      faulted.push(line);
      if (current.kind === "close") return socket.destroy();
      if (current.kind !== "status") return; // hang: read, never answer
      // As the real ones answer: Docker Hub's 429 is registry JSON, a CDN's or load balancer's 5xx is an HTML page.
      const limited = current.status === 429;
      const body = limited
        ? JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "You have reached your pull rate limit.", detail: null }] })
        : `<html><body><h1>${current.status} ${REASONS[current.status] ?? "Trouble"}</h1></body></html>`;
      const lines = [`HTTP/1.1 ${current.status} ${REASONS[current.status] ?? "Trouble"}`, "connection: close", `content-type: ${limited ? "application/json" : "text/html"}`];
      if (current.retryAfter !== undefined) lines.push(`retry-after: ${current.retryAfter}`);
      lines.push(`content-length: ${line.startsWith("HEAD ") ? 0 : Buffer.byteLength(body)}`);
      socket.end(`${lines.join("\r\n")}\r\n\r\n${line.startsWith("HEAD ") ? "" : body}`);
    });
  });

  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  await listen(0);
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    via: (t) => {
      const u = new URL(t);
      return `${url}${u.pathname}${u.search}`;
    },
    faulted,
    async set(next) {
      const wasRefusing = mode.kind === "refuse";
      mode = next;
      for (const socket of sockets) socket.destroy();
      if (next.kind === "refuse" && !wasRefusing) await new Promise<void>((resolve) => server.close(() => resolve()));
      if (next.kind !== "refuse" && wasRefusing) await listen(port);
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      if (mode.kind !== "refuse") await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** How docxy refuses content it has not cached while its upstream is in one kind of trouble. */
export interface Refusal {
  status: number;
  /** the registry JSON's first error code */
  code: string;
  retryAfter?: string;
}

/**
 * Each kind of trouble issue 14 names, and docxy's answer for uncached content in it: the
 * upstream's real reason (429 with its Retry-After; a 5xx or a refused connection → 502/503
 * UNAVAILABLE; past the header timeout → 504), never docxy's own 500. `shown`: what Docker and
 * containers/image print for it, lower-cased: the JSON's code, but for 502/504 the status line.
 */
export const TROUBLES: { name: string; mode: TroubleMode; uncached: Refusal; shown: string }[] = [
  { name: "answers 429 with Retry-After", mode: { kind: "status", status: 429, retryAfter: "1" }, uncached: { status: 429, code: "TOOMANYREQUESTS", retryAfter: "1" }, shown: "toomanyrequests" },
  { name: "answers 500", mode: { kind: "status", status: 500 }, uncached: { status: 502, code: "UNAVAILABLE" }, shown: "502 bad gateway" },
  { name: "answers 503", mode: { kind: "status", status: 503 }, uncached: { status: 503, code: "UNAVAILABLE" }, shown: "unavailable" },
  { name: "refuses connections", mode: { kind: "refuse" }, uncached: { status: 502, code: "UNAVAILABLE" }, shown: "502 bad gateway" },
  { name: "stops answering", mode: { kind: "hang" }, uncached: { status: 504, code: "UNAVAILABLE" }, shown: "504 gateway timeout" },
];

/** The refusal as the tests compare it: status, code, and Retry-After only when there is one. */
export function refusalOf(status: number, code: string | undefined, retryAfter: string | null): Refusal {
  return { status, code: code ?? "", ...(retryAfter === null ? {} : { retryAfter }) };
}

/**
 * The in-process tests' upstream: the raw-TCP fake registry (answering with `handler`) behind a
 * fault switch, started before and stopped after the calling test file. The fields are set once
 * its beforeAll has run.
 */
export function troubledFakeRegistry(handler?: FakeHandler): { fake: FakeRegistry; trouble: Trouble } {
  const parts = {} as { fake: FakeRegistry; trouble: Trouble };
  beforeAll(async () => {
    parts.fake = await startFakeRegistry(handler);
    parts.trouble = await startTrouble(parts.fake.url);
  });
  afterAll(async () => {
    await parts.trouble?.stop();
    await parts.fake?.stop();
  });
  return parts;
}

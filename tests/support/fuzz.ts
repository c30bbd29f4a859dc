/**
 * Hostile-input helpers for tests/integration/http/security.test.ts: raw HTTP/1.1
 * exchanges (any bytes in the request line and headers, over TCP or TLS), a
 * seeded PRNG so a failing fuzz run reproduces from its printed seed, and the
 * generator of random registry-ish requests.
 */
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";

export interface Reply {
  status: number;
  /** Lower-cased names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** De-chunked when the response was chunked. */
  body: Buffer;
}

/** What one raw exchange gave: a reply, a connection closed without one, or nothing within the timeout. */
export type Outcome = Reply | "closed" | "timeout";

export interface RawSpec {
  method: string;
  /** The request target, written as is (latin1, so any byte can be sent). */
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** Instead of `body`: this many bytes streamed in 1 MiB writes (chunked when the headers say so), until done or refused. */
  streamed?: number;
}

/** Sends `spec` on a fresh connection (`connection: close` added) to `url`'s port on 127.0.0.1. */
export function send(url: string, spec: RawSpec, timeoutMs = 15_000): Promise<Outcome> {
  const { protocol, port } = new URL(url);
  const lines = [`${spec.method} ${spec.target} HTTP/1.1`, ...spec.headers.map(([k, v]) => `${k}: ${v}`), "connection: close"];
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const write = () => {
      socket.write(spec.body ? Buffer.concat([head, spec.body]) : head); // no end(): a half-closed client gets no answer
      if (spec.streamed) void stream(spec.streamed, spec.headers.some(([k, v]) => k === "transfer-encoding" && v === "chunked"));
    };
    const drained = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          socket.off("drain", done).off("close", done);
          resolve();
        };
        socket.on("drain", done).on("close", done);
      });
    const stream = async (total: number, chunked: boolean) => {
      const mib = Buffer.alloc(1024 * 1024, "a");
      for (let sent = 0; sent < total && !socket.destroyed; sent += mib.length) {
        const ok = socket.write(chunked ? Buffer.concat([Buffer.from("100000\r\n"), mib, Buffer.from("\r\n")]) : mib);
        if (!ok) await drained();
      }
      if (chunked && !socket.destroyed) socket.write("0\r\n\r\n");
    };
    const socket =
      protocol === "https:"
        ? tlsConnect({ port: Number(port), host: "127.0.0.1", rejectUnauthorized: false }, write)
        : connect(Number(port), "127.0.0.1", write);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("timeout");
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parse(Buffer.concat(chunks), spec.method === "HEAD"));
    });
  });
}

function parse(all: Buffer, head: boolean): Reply | "closed" {
  const split = all.indexOf("\r\n\r\n");
  if (split < 0) return "closed";
  const [statusLine, ...lines] = all.subarray(0, split).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf(":");
    headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  let body = head ? Buffer.alloc(0) : all.subarray(split + 4);
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) body = dechunk(body);
  return { status: Number(statusLine!.split(" ")[1]), headers, body };
}

function dechunk(framed: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = framed.indexOf("\r\n", at);
    const size = eol < 0 ? 0 : parseInt(framed.subarray(at, eol).toString("latin1"), 16);
    if (!(size > 0)) return Buffer.concat(out);
    out.push(framed.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** The reply, or a thrown error naming what happened instead. */
export function reply(outcome: Outcome): Reply {
  if (typeof outcome === "string") throw new Error(`expected an HTTP answer, got: ${outcome}`);
  return outcome;
}

/** The `token` of a token endpoint's JSON answer, if it is one. */
export function tokenIn(r: Reply): unknown {
  try {
    return JSON.parse(r.body.toString()).token;
  } catch {
    return undefined; // a HEAD, or not a token answer
  }
}

/** The registry error code of a `{"errors":[{"code":…}]}` body, or undefined when the body is not one. */
export function registryCode(reply: Reply): string | undefined {
  try {
    const code = JSON.parse(reply.body.toString("utf8"))?.errors?.[0]?.code;
    return typeof code === "string" && /^[A-Z_]+$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `count` jobs, `concurrency` at a time. */
export async function pool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

export interface FuzzContext {
  /** Digests the upstream really has, mixed with invalid ones. */
  digests: string[];
  /** Host header values worth trying besides junk (e.g. the listener's own, an upstream's `hosts`). */
  hosts: string[];
  /** Authorization values worth trying besides junk. */
  authorizations: string[];
}

const METHODS = ["GET", "GET", "GET", "GET", "GET", "GET", "HEAD", "HEAD", "HEAD", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "G3T", "get", "BREW", "M-SEARCH"];
const REGISTRIES = ["", "", "", "docker.io/", "DOCKER.IO/", "ghcr.io/", "evil.com:80/", "localhost/", "index.docker.io/", "127.0.0.1:1/"];
const NAMES = ["acme/app", "acme/app", "library/alpine", "library/alpine", "library/alpine", "alpine", "alpine", "nginx", "private/secret", "library/manytags", "acme/./app", "library/x/../../acme/app",
  "acme%2fapp", "%2e%2e/acme/app", "..", "acme/app%00", "acme\\app", "acme//app", "ACME/app", "ac%C3%A9me/app", "ü/app", "a".repeat(300), "", "acme/app/"];
const KINDS = ["manifests/", "manifests/", "blobs/", "blobs/", "tags/list", "referrers/", "blobs/uploads/", "_catalog", ""];
const TAGS = ["v1", "latest", "3.20", "t050", "nope", "t".repeat(129), "v1%00", "..%2f..", "%76%31", "-bad", "latest?"];
const QUERIES = ["", "", "", "?ns=docker.io", "?ns=ghcr.io", "?ns=evil.com:80", "?ns=", "?ns=DOCKER.IO&ns=ghcr.io", "?n=5&last=t050", "?n=-1", "?n=abc&last=%ff",
  "?n=99999999999999999999", "?scope=repository:acme/app:pull", "?scope=repository:docker.io/acme/app:pull&service=evil", "?%zz=%", "?last=%00%0d%0a"];
const AUTH_PATHS = ["/auth/token", "/auth/dockerhub/token", "/auth/ghcr/token", "/auth/nope/token", "/auth/", "/auth/../v2/", "/auth/%2e%2e/token"];
const OTHER_PATHS = ["/health", "/generate_204", "/docs", "/docs/json", "/", "//v2/", "/v2", "/V2/", "/v2/_catalog", "*", "http://evil.test/v2/", "/v2/%"];
const ACCEPTS = ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.index.v1+json, */*", "*/*", "text/html", "\u00ff;q=x", ""];
const RANGES = ["bytes=0-10", "bytes=3-", "bytes=0-0", "bytes=5-1", "bytes=-0", "bytes=999999999999-", "bytes=0-", "bytes=abc", "items=0-1", "bytes=0-1,3-4", "bytes=-99999999999999999999"];
const JUNK_AUTH = ["Bearer", "Bearer ", "Basic !!!", "Basic Og==", `Basic ${Buffer.from("nocolon").toString("base64")}`, "Bearer a.b.c", "Digest x", "\u00ff\u00fe", "x".repeat(9000),
  "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", `Basic ${Buffer.from("alice:wrong").toString("base64")}`];
const JUNK_HOSTS = ["evil.test", "evil.test:443", "", "a b", "localhost:99999", "127.0.0.1@evil.test", "[::1]", "xn--e1afmkfd.xn--p1ai"];

/** One random request; `ctx` makes part of them hit real content and real routing. */
export function fuzzRequest(rand: () => number, ctx: FuzzContext): RawSpec {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
  const chance = (p: number) => rand() < p;
  const encode = (text: string) => (chance(0.1) ? text.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`) : text);
  const method = pick(METHODS);
  let target: string;
  const roll = rand();
  if (roll < 0.75) {
    const kind = pick(KINDS);
    const reference = kind === "manifests/" ? pick([...TAGS, ...ctx.digests]) : kind === "blobs/" || kind === "referrers/" ? pick(ctx.digests) : "";
    target = `/v2/${pick(REGISTRIES)}${encode(pick(NAMES))}/${kind}${reference}${pick(QUERIES)}`;
    if (chance(0.05)) target = "/v2/" + pick(QUERIES);
  } else if (roll < 0.9) target = `${pick(AUTH_PATHS)}${pick(QUERIES)}`;
  else target = pick(OTHER_PATHS);

  const headers: [string, string][] = [["host", chance(0.7) ? pick(ctx.hosts) : pick(JUNK_HOSTS)]];
  if (chance(0.5)) headers.push(["accept", pick(ACCEPTS)]);
  if (chance(0.3)) headers.push(["range", pick(RANGES)]);
  if (chance(0.1)) headers.push(["if-none-match", `"${pick(ctx.digests)}"`]);
  if (chance(0.6)) headers.push(["authorization", chance(0.7) ? pick(ctx.authorizations) : pick(JUNK_AUTH)]);
  if (chance(0.2)) headers.push(["x-forwarded-for", `${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.0.1, 10.0.0.1`]);
  if (chance(0.1)) headers.push(["x-forwarded-host", pick(JUNK_HOSTS)], ["x-forwarded-proto", "https"]);
  let body: Buffer | undefined;
  if (method === "POST" || method === "PUT" || method === "PATCH" || chance(0.05)) {
    const form = pick(["grant_type=password&username=carol&password=x&scope=repository%3Aacme%2Fapp%3Apull", "grant_type=refresh_token&refresh_token=a.b.c",
      "grant_type=%ff&scope=", "x".repeat(70_000), "{}", ""]);
    body = Buffer.from(form, "latin1");
    headers.push(["content-type", pick(["application/x-www-form-urlencoded", "application/json", "multipart/form-data; boundary=x"])]);
    headers.push(["content-length", String(body.length)]);
  }
  return { method, target, headers, body };
}

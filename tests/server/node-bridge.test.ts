/**
 * The bridge in process: a node:http server around a handler, no app. The
 * handler gets a ServedRequest carrying the connection's facts; lengths,
 * file bodies and the finished exchange are what the edge writes. Through the
 * binary (Host oddities, body deadlines, hang-ups):
 * tests/integration/server/node-bridge.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { contextOf, ServedRequest } from "../../src/http/request-context";
import { FileSender } from "../../src/server/file-sender";
import { nodeHandler, originForm, type Exchange } from "../../src/server/node-bridge";
import { fileResponse, handingOff } from "../../src/util/file-response";
import { removeAtExit } from "../support/cleanup";

const dir = mkdtempSync(join(tmpdir(), "docxy-bridge-"));
removeAtExit(dir);
const file = join(dir, "blob");
writeFileSync(file, "0123456789");

let server: http.Server;
let base: string;
const seen: Request[] = [];
const done: Exchange[] = [];
let released = 0;

beforeAll(async () => {
  const handler = (request: Request) => {
    seen.push(request);
    contextOf(request).notes.user = "alice";
    const path = new URL(request.url).pathname;
    if (path === "/handoff") {
      // A follower of a fill committed mid-body: "01" streamed, the rest from the file ("23456789").
      return handingOff(
        (handoff) =>
          new ReadableStream({
            pull(controller) {
              if (!handoff.accepted) throw new Error("the edge did not accept the handoff");
              controller.enqueue(new TextEncoder().encode("01"));
              handoff.rest = { path: file, start: 2, end: 9, done: () => released++ };
              controller.close();
            },
          }, { highWaterMark: 0 }), // pulled on read only, like a fill's reader
        { headers: { "content-length": "10" } },
      );
    }
    if (path === "/held" || path === "/short") {
      // A cold MISS: every byte (or, cut, only some) out, the stream held open until the commit.
      const bytes = path === "/held" ? "whole!" : "who";
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(bytes));
          },
        }),
        { headers: { "content-length": "6" } },
      );
    }
    if (path === "/file") return fileResponse({ path: file, start: 2, end: 5, done: () => released++ }, { headers: { "content-length": "4" } });
    return new Response(new Blob(["streamed"]).stream(), { headers: { "content-length": "8", "x-cache": "MISS" } });
  };
  server = http.createServer(nodeHandler(handler, (exchange) => done.push(exchange), new FileSender(), 1000));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function finished(count: number): Promise<void> {
  for (let i = 0; i < 100 && done.length < count; i++) await Bun.sleep(10);
}

test("the handler gets a ServedRequest whose connection facts are the socket's and the Host header's", async () => {
  const response = await fetch(`${base}/v2/x?ns=docker.io`, { headers: { host: "docxy.test:5000" } });
  expect(await response.text()).toBe("streamed");
  const request = seen.at(-1)!;
  expect(request).toBeInstanceOf(ServedRequest);
  // The URL's authority is the socket's address whatever the Host (Elysia reads the path at a fixed offset).
  expect(request.url).toBe(`${base}/v2/x?ns=docker.io`);
  expect((request as ServedRequest).context.connection).toEqual({ host: "docxy.test:5000", secure: false, localPort: Number(new URL(base).port), remoteAddress: "127.0.0.1" });
});

test("the finished exchange carries the request's notes and what was sent", async () => {
  const before = done.length;
  const response = await fetch(`${base}/v2/library/a/blobs/sha256:ab?ns=docker.io`);
  expect(response.headers.get("content-length")).toBe("8");
  await response.arrayBuffer();
  await finished(before + 1);
  const { ms, context, ...rest } = done.at(-1)!;
  expect(rest).toEqual({ cache: "MISS", method: "GET", path: "/v2/library/a/blobs/sha256:ab", query: "ns=docker.io", status: 200, bytes: 8, remoteAddress: "127.0.0.1", complete: true });
  expect(context.notes).toEqual({ user: "alice" });
  expect(ms).toBeGreaterThanOrEqual(0);
});

test("a file response is sent from the file, its range only, and released once", async () => {
  const before = done.length;
  const response = await fetch(`${base}/file`);
  expect(await response.text()).toBe("2345");
  await finished(before + 1);
  expect(done.at(-1)!.bytes).toBe(4);
  for (let i = 0; i < 100 && released === 0; i++) await Bun.sleep(10); // once the send settles
  await Bun.sleep(20);
  expect(released).toBe(1);
});

test("a body handed off mid-way goes on from the file: every byte once, counted, the file released", async () => {
  const before = done.length;
  const releasedBefore = released;
  const response = await fetch(`${base}/handoff`);
  expect(await response.text()).toBe("0123456789");
  await finished(before + 1);
  expect(done.at(-1)).toMatchObject({ bytes: 10, complete: true });
  for (let i = 0; i < 100 && released === releasedBefore; i++) await Bun.sleep(10); // once the send settles
  await Bun.sleep(20);
  expect(released).toBe(releasedBefore + 1);
});

/** GETs `path` over a raw socket and hangs up once `bytes` body bytes arrived, as skopeo does at its Content-Length. */
async function hangUpAfter(path: string, bytes: number): Promise<void> {
  const { port } = new URL(base);
  await new Promise<void>((resolve) => {
    let received = Buffer.alloc(0);
    const socket = Bun.connect({
      hostname: "127.0.0.1",
      port: Number(port),
      socket: {
        open: (s) => void s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`),
        data: (s, chunk) => {
          received = Buffer.concat([received, chunk]);
          const head = received.indexOf("\r\n\r\n");
          if (head >= 0 && received.length - head - 4 >= bytes) s.end();
        },
        close: () => resolve(),
      },
    });
    void socket;
  });
}

test("a client that hangs up once it has every promised byte, before the body ended, is logged complete", async () => {
  const before = done.length;
  await hangUpAfter("/held", 6);
  await finished(before + 1);
  expect(done.at(-1)).toMatchObject({ path: "/held", bytes: 6, complete: true });
});

test("a connection that ends short of the promised length is logged incomplete", async () => {
  const before = done.length;
  await hangUpAfter("/short", 3);
  await finished(before + 1);
  expect(done.at(-1)).toMatchObject({ path: "/short", bytes: 3, complete: false });
});

test("origin form: absolute targets keep path and query, never their host", () => {
  expect(originForm("/v2/?ns=x")).toBe("/v2/?ns=x");
  expect(originForm("http://evil.example/v2/a?b=c")).toBe("/v2/a?b=c");
  expect(originForm("ftp://x/y")).toBe("/");
  expect(originForm("*")).toBe("/");
  expect(originForm(undefined)).toBe("/");
});

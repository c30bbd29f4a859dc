/**
 * Clients hanging up on a blob whose fill then fails, against the compiled
 * binary and a fake upstream that cuts, sends wrong bytes or stalls: every
 * combination of when the client leaves (before the response head, after it,
 * mid-body) and how the fill fails (cut, digest mismatch, idle timeout) must
 * leave the process serving, with nothing cached and no temp file, and
 * without the last-resort handler in main.ts ever having been needed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { gate, startFakeRegistry, type FakeRegistry, type FakeReply, type FakeRequest } from "../support/cache/fake-registry";
import { isCached, sha256, startCachingDocxy, tempFiles, waitFor, type CachingDocxy } from "../support/cache/harness";

const MIB = 1024 * 1024;

type Failure = "cut" | "mismatch" | "idle";
type HangUp = "before head" | "after head" | "mid-body";

interface Blob {
  bytes: Uint8Array<ArrayBuffer>;
  digest: string;
  /** Set once the client has hung up: the upstream then fails the fill. */
  clientGone?: Promise<void>;
  failure?: Failure;
  /** Released when the upstream has failed the fill (idle: when it starts stalling). */
  failed?: () => void;
  /** Bytes sent before the client is let go (mid-body). */
  headBytes?: number;
}

const blobs = new Map<string, Blob>();
function newBlob(size: number): Blob {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65536)));
  const blob: Blob = { bytes, digest: sha256(bytes) };
  blobs.set(blob.digest, blob);
  return blob;
}

async function answer(request: FakeRequest, reply: FakeReply): Promise<void> {
  const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(request.path)?.[1];
  const blob = digest ? blobs.get(digest) : undefined;
  if (!blob) return reply.send(404, { "content-type": "application/json" }, '{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown","detail":null}]}');
  const headers = { "content-type": "application/octet-stream", "content-length": String(blob.bytes.length), "docker-content-digest": blob.digest };
  if (request.method === "HEAD") return reply.send(200, headers);
  if (!blob.failure) {
    reply.head(200, headers);
    await reply.write(blob.bytes);
    return reply.end();
  }
  const gone = blob.clientGone!;
  if (blob.headBytes === undefined) await gone; // before head: the upstream answers only once the client left
  reply.head(200, headers);
  if (blob.headBytes) await reply.write(blob.bytes.subarray(0, blob.headBytes));
  await gone;
  const half = blob.bytes.subarray(0, Math.floor(blob.bytes.length / 2));
  if (blob.failure === "cut") {
    await reply.write(half.subarray(blob.headBytes ?? 0));
    await Bun.sleep(50);
    reply.cut();
  } else if (blob.failure === "mismatch") {
    const wrong = blob.bytes.slice(blob.headBytes ?? 0);
    wrong[wrong.length - 1]! ^= 0xff;
    await reply.write(wrong);
    reply.end();
  } else {
    await reply.write(half.subarray(blob.headBytes ?? 0));
    // then nothing: docxy's idle timeout (1 s here) ends the fill
  }
  blob.failed?.();
}

let fake: FakeRegistry;
beforeAll(async () => {
  fake = await startFakeRegistry(answer);
});
afterAll(() => fake?.stop());

const blobUrl = (docxy: CachingDocxy, blob: Blob) => `${docxy.url}/v2/acme/hangup/blobs/${blob.digest}`;

/** A raw client socket that sends the GET and hangs up at the chosen moment; resolves once it has. */
function hangUp(docxy: CachingDocxy, blob: Blob, when: HangUp): Promise<void> {
  const target = new URL(blobUrl(docxy, blob));
  return new Promise((resolve) => {
    const socket = connect(Number(target.port), target.hostname);
    let received = Buffer.alloc(0);
    const leave = () => {
      socket.destroy();
      resolve();
    };
    socket.on("connect", () => {
      socket.write(`GET ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\nconnection: close\r\n\r\n`);
      // Before head: the upstream holds its answer until we are gone; leave once the upstream has the GET.
      if (when === "before head") void waitFor(() => upstreamGets(blob) >= 1, "the upstream GET").then(() => Bun.sleep(100)).then(leave);
    });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (when === "after head") return leave();
      if (when === "mid-body" && received.length - end - 4 >= 64 * 1024) leave();
    });
    socket.on("error", leave);
  });
}

const upstreamGets = (blob: Blob) => fake.log.filter((r) => r.method === "GET" && r.path.endsWith(blob.digest)).length;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const failures: Failure[] = ["cut", "mismatch", "idle"];
const hangUps: HangUp[] = ["before head", "after head", "mid-body"];

describe("a client hangs up, then the fill fails: docxy lives and serves the next request", () => {
  for (const when of hangUps) {
    for (const failure of failures) {
      test(`hang-up ${when}, fill ${failure}`, async () => {
        // A docxy of its own: a crash must fail this test only.
        const docxy = await startCachingDocxy(fake.toml, { env: { DOCXY_UPSTREAM_IDLE_TIMEOUT: "1" } });
        try {
          await hangUpThenFail(docxy, when, failure);
        } finally {
          await docxy.stop();
        }
      }, 30_000);
    }
  }
});

async function hangUpThenFail(docxy: CachingDocxy, when: HangUp, failure: Failure): Promise<void> {
  const blob = newBlob(2 * MIB);
  const gone = gate();
  const failed = gate();
  Object.assign(blob, { failure, clientGone: gone.promise, failed: failed.open, headBytes: when === "before head" ? undefined : when === "after head" ? 0 : 256 * 1024 });
  await hangUp(docxy, blob, when);
  gone.open();
  await failed.promise;
  // The fill has failed (idle: it ends after the 1 s timeout); nothing is left of it.
  await waitFor(() => !alive(docxy.pid) || docxy.log().split("\n").some((l) => l.includes("fill failed") && l.includes(blob.digest)), "the failed fill", 15_000);
  await Bun.sleep(200); // an unhandled error would take the process down about now
  expect({ alive: alive(docxy.pid), log: alive(docxy.pid) ? "" : docxy.log().slice(-6000) }).toEqual({ alive: true, log: "" });
  await waitFor(() => tempFiles(docxy.cacheDir).length === 0, "the temp file to go", 5000);
  expect(isCached(docxy.cacheDir, blob.digest)).toBe(false);

  // The upstream recovers: the next request is a fresh, correct download.
  blob.failure = undefined;
  const next = await fetch(blobUrl(docxy, blob));
  expect({ status: next.status, cache: next.headers.get("x-cache"), digest: sha256(await next.arrayBuffer()) }).toEqual({ status: 200, cache: "MISS", digest: blob.digest });
  expect(docxy.log()).not.toContain("docxy keeps serving"); // the safety net in main.ts was not needed
}

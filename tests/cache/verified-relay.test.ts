/**
 * The verification of blobs relayed without a fill, in process, on bodies
 * made here. Through the binary, a fallback lying about a blob:
 * tests/integration/upstream/fallbacks.test.ts.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { OffThreadHashing } from "../../src/cache/hashing-thread";
import { verified, verifiedBlob } from "../../src/cache/verified-relay";
import { sha256 } from "../support/cache/harness";

function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull(controller) {
      const next = chunks.shift();
      if (next) controller.enqueue(next);
      else controller.close();
    },
  });
}

/** Every chunk read, and how the stream ended. */
async function drain(stream: ReadableStream<Uint8Array>): Promise<{ bytes: Buffer; error?: string }> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of stream) parts.push(chunk);
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error: (error as Error).message };
  }
}

const chunks = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
const whole = Buffer.concat(chunks);

test("bytes matching the digest come through whole and unchanged", async () => {
  expect(await drain(verified(bodyOf([...chunks]), sha256(whole)))).toEqual({ bytes: whole });
});

test("bytes that do not match end in an error before the last chunk: the body is never whole", async () => {
  const wrong = Buffer.from(whole);
  wrong[4500] = wrong[4500]! ^ 1;
  const { bytes, error } = await drain(verified(bodyOf([wrong.subarray(0, 1000), wrong.subarray(1000, 3000), wrong.subarray(3000)]), sha256(whole)));
  expect(error).toStartWith("digest mismatch");
  expect(bytes.length).toBe(3000);
  expect(bytes.equals(wrong.subarray(0, 3000))).toBe(true);
});

test("a client that leaves cancels the upstream body", async () => {
  let cancelled: unknown;
  const body = new ReadableStream<Uint8Array>({
    pull: (controller) => controller.enqueue(new Uint8Array(1000)),
    cancel: (reason) => void (cancelled = reason),
  });
  const reader = verified(body, sha256(whole)).getReader();
  await reader.read();
  await reader.cancel("client left");
  expect(cancelled).toBe("client left");
});

test("a wrong body in one chunk delivers nothing", async () => {
  const { bytes, error } = await drain(verified(bodyOf([Buffer.alloc(244, 0x78)]), sha256(whole)));
  expect({ length: bytes.length, error: error?.startsWith("digest mismatch") }).toEqual({ length: 0, error: true });
});

test("only a whole blob (a 200 with a body) is checked; errors, partial content and non-sha256 digests are relayed as they are", async () => {
  const digest = sha256(whole);
  const wrong = () => bodyOf([Buffer.alloc(10)]);
  for (const status of [404, 206, 503]) {
    const response = new Response(wrong(), { status, headers: { "x-probe": "1" } });
    expect(verifiedBlob(response, digest)).toBe(response);
  }
  const other = new Response(wrong(), { status: 200 });
  expect(verifiedBlob(other, "sha512:" + "0".repeat(128))).toBe(other);
  const checked = verifiedBlob(new Response(wrong(), { status: 200, headers: { "content-length": "10", "docker-content-digest": digest } }), digest);
  expect(checked.headers.get("content-length")).toBe("10");
  expect(checked.headers.get("docker-content-digest")).toBe(digest);
  expect((await drain(checked.body!)).error).toStartWith("digest mismatch");
});

test("hashed where the cache hashes its fills (a worker thread): the same verdicts", async () => {
  const hashing = new OffThreadHashing();
  try {
    expect(await drain(verified(bodyOf([...chunks]), sha256(whole), hashing))).toEqual({ bytes: whole });
    const { bytes, error } = await drain(verified(bodyOf([...chunks]), sha256(Buffer.from("another blob")), hashing));
    expect({ length: bytes.length, error: error?.startsWith("digest mismatch") }).toEqual({ length: 3000, error: true });
  } finally {
    hashing.close();
  }
});

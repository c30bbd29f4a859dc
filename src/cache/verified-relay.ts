/**
 * A whole blob relayed from the upstream without a fill to verify it (the
 * fill it would have joined failed, or the store cannot take it): checked
 * against its digest all the same. The last chunk is held back until the
 * body hashes to the digest, so a body that does not ends short of its
 * Content-Length and the client's connection is cut, as a fill's readers
 * are (fill.ts): a wrong blob never looks whole, whether the upstream or a
 * fallback sent it. Tests: tests/cache/verified-relay.test.ts, and through
 * the binary a lying fallback in tests/integration/upstream/fallbacks.test.ts.
 */
import { IN_THREAD, type Hashing } from "./hashing";

/** `response` as is, unless it is a whole blob (a 200 with a body): then its body is verified against `digest`. */
export function verifiedBlob(response: Response, digest: string, hashing: Hashing = IN_THREAD): Response {
  if (response.status !== 200 || response.body === null || !digest.startsWith("sha256:")) return response;
  const { status, statusText, headers } = response;
  return new Response(verified(response.body, digest, hashing), { status, statusText, headers });
}

/**
 * `body` checked against `digest` (sha256:hex) by `hashing`, where fills hash too (hashing.ts), one
 * chunk held back; it errors instead of ending when they differ. Pulled chunk by chunk, so the
 * client's pace is the upstream's; a client that leaves cancels the upstream body and the hash.
 */
export function verified(body: ReadableStream<Uint8Array>, digest: string, hashing: Hashing = IN_THREAD): ReadableStream<Uint8Array> {
  const hash = hashing.start();
  const upstream = body.getReader();
  // Each chunk of a fetch body is a buffer of its own (and hashing copies what it keeps), so the one
  // held back is not overwritten.
  let held: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          // A pull must enqueue something, or the stream never pulls again: the first chunk is only held.
          for (;;) {
            const { value, done } = await upstream.read();
            if (done) break;
            await hash.update(value);
            const previous = held;
            held = value;
            if (previous) return controller.enqueue(previous);
          }
          const actual = `sha256:${await hash.digest()}`;
          if (actual !== digest) throw new Error(`digest mismatch: upstream content hashes to ${actual}`);
          if (held) controller.enqueue(held);
          controller.close();
        } catch (error) {
          hash.drop();
          void upstream.cancel(error).catch(() => undefined);
          controller.error(error);
        }
      },
      cancel(reason) {
        hash.drop();
        return upstream.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

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

/** `response` as is, unless it is a whole blob (a 200 with a body): then its body is verified against `digest`. */
export function verifiedBlob(response: Response, digest: string): Response {
  if (response.status !== 200 || response.body === null || !digest.startsWith("sha256:")) return response;
  const { status, statusText, headers } = response;
  return new Response(verified(response.body, digest), { status, statusText, headers });
}

/** `body` checked against `digest` (sha256:hex), one chunk held back; it errors instead of ending when they differ. */
export function verified(body: ReadableStream<Uint8Array>, digest: string): ReadableStream<Uint8Array> {
  const hasher = new Bun.CryptoHasher("sha256");
  // Each chunk of a fetch body is a buffer of its own, so the one held back is not overwritten.
  let held: Uint8Array | undefined;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hasher.update(chunk);
        if (held) controller.enqueue(held);
        held = chunk;
      },
      flush(controller) {
        const actual = `sha256:${hasher.digest("hex")}`;
        if (actual !== digest) return controller.error(new Error(`digest mismatch: upstream content hashes to ${actual}`));
        if (held) controller.enqueue(held);
      },
    }),
  );
}

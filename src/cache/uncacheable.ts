/**
 * A blob answer the cache cannot keep, relayed from the one upstream request
 * its fill already made: an error, a 200 without a length to follow, or one
 * the store could not take. A whole blob is verified against its digest on
 * the way (verified-relay.ts). That request asked for the whole blob (a fill
 * wants all of it), so a client that sent a Range is given its slice here
 * instead of asking the upstream again: Docker resumes a layer with
 * `Range: bytes=N-` and refuses anything but a 206.
 *
 * Without a total length only a range with both ends can be sliced (its
 * Content-Range says `/*`, RFC 9110 §14.4). Any other range (`bytes=N-`,
 * Docker's resume) is the one case that asks the upstream again, with the
 * client's Range: a 200 would be allowed by RFC 9110 §14.2, but Docker
 * refuses it when resuming, and only the upstream knows where its end is.
 * Tests: tests/cache/uncacheable.test.ts, and tests/cache/blob-cache.test.ts
 * for a store that refuses the blob (upstream requests counted in both).
 */
import type { PullRequest } from "../proxy/pull-request";
import type { UpstreamResponse } from "../upstream/client";
import { parseRange, type ByteRange } from "../oci/responses";
import type { Hashing } from "./hashing";
import type { Remote } from "./remote";
import { verifiedBlob } from "./verified-relay";

/** `hashing`: where a whole blob is hashed for its verification (the cache's, as for a fill). */
export async function relayUncacheable(remote: Remote, request: PullRequest, answer: UpstreamResponse, hashing?: Hashing): Promise<Response> {
  const relayed = await remote.relay(request, answer);
  const header = request.headers.get("range");
  if (header === null) return verifiedBlob(relayed, request.path.reference!, hashing);
  if (relayed.status !== 200 || relayed.body === null) return relayed;
  const length = Number(relayed.headers.get("content-length") ?? NaN);
  const total = Number.isSafeInteger(length) ? length : undefined;
  const range = total === undefined ? boundedRange(header) : parseRange(header, total);
  if (range === undefined && total === undefined && parseRange(header, Number.MAX_SAFE_INTEGER) !== undefined) {
    await relayed.body.cancel().catch(() => undefined);
    return remote.forward(request);
  }
  if (range === undefined) return relayed;
  const { headers } = relayed;
  if (range === "unsatisfiable") {
    await relayed.body.cancel().catch(() => undefined);
    headers.set("content-range", `bytes */${total}`);
    headers.delete("content-length");
    return new Response(null, { status: 416, headers });
  }
  const [start, end] = range;
  headers.set("content-range", `bytes ${start}-${end}/${total ?? "*"}`);
  headers.set("content-length", String(end - start + 1));
  return new Response(slice(relayed.body, range), { status: 206, headers });
}

/** `bytes=N-M`: the only range that can be cut from a body of unknown length. */
function boundedRange(header: string): ByteRange | undefined {
  const match = /^bytes=(\d+)-(\d+)$/.exec(header.trim());
  if (!match || Number(match[2]) < Number(match[1])) return undefined;
  return [Number(match[1]), Number(match[2])];
}

/**
 * Bytes `start`..`end` (inclusive) of `body`. A body that ends before them
 * errors the stream: the client's connection is cut rather than a short
 * body passing for the whole range.
 */
function slice(body: ReadableStream<Uint8Array>, [start, end]: ByteRange): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let position = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          if (position > end) {
            await reader.cancel().catch(() => undefined);
            return controller.close();
          }
          const { value, done } = await reader.read();
          if (done) return controller.error(new Error(`the upstream body ended at byte ${position}, before the range ${start}-${end}`));
          const from = Math.max(0, start - position);
          const to = Math.min(value.length, end + 1 - position);
          position += value.length;
          if (from < to) return controller.enqueue(value.subarray(from, to));
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

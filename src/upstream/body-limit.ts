/**
 * Hard caps on upstream bodies that docxy reads or relays whole: manifests,
 * tag lists and referrers, token responses, error bodies. Blobs are not
 * capped: they are streamed and verified by digest, never held.
 *
 * Caps are enforced on the bytes as they arrive, not on what the headers
 * claim: a chunked answer has no Content-Length at all. An announced length
 * over the cap is refused before a byte is read. Under the cap an announced
 * body may stream through as is: Bun's fetch delivers exactly Content-Length
 * bytes and fails a body that ends short (pinned by
 * tests/upstream/body-limit.test.ts), so the count is the parser's. But a
 * Content-Length next to a Transfer-Encoding announces nothing: the body is
 * chunked and as long as the sender likes (RFC 9112 §6.3; Bun reads it so
 * and keeps the header). A body without a real length is read up to the
 * cap before anything is answered, so that a refusal is still a
 * registry-JSON error and not a cut stream.
 *
 * A refusal is a 502: the client asked for something valid and the upstream
 * answered with something unusable (RFC 9110 §15.6.3).
 */
import { RegistryError, type ErrorCode } from "../oci/errors";
import { discard } from "./client";

export interface BodyLimit {
  bytes: number;
  /** What the body is, for the refusal. */
  what: string;
  code: ErrorCode;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** distribution's own limit for manifests (and so for what any registry serves); MANIFEST_INVALID is what clients print as "manifest invalid". */
export const MANIFEST_LIMIT: BodyLimit = { bytes: 4 * MiB, what: "manifest", code: "MANIFEST_INVALID" };
/**
 * Tag lists and referrers: 16 MiB is about 130,000 tags of the longest legal
 * name (128 characters) or a million typical ones, more than any repository
 * has in one page (registries paginate with `n` and Link).
 */
export const LISTING_LIMIT: BodyLimit = { bytes: 16 * MiB, what: "listing", code: "UNAVAILABLE" };
/** A token response is a JWT or two of a few KiB; 1 MiB leaves room for any real one. */
export const TOKEN_LIMIT: BodyLimit = { bytes: 1 * MiB, what: "token response", code: "UNAVAILABLE" };
/** A registry error body is a line of JSON; 64 KiB holds any detail a client would show. */
export const ERROR_LIMIT: BodyLimit = { bytes: 64 * KiB, what: "error body", code: "UNAVAILABLE" };

/** The whole body, at most `limit.bytes` of it; past that the rest is cancelled and `source`'s answer refused. */
export async function readCapped(response: Response, limit: BodyLimit, source: string): Promise<Uint8Array> {
  const announced = announcedLength(response);
  if (announced !== undefined && announced > limit.bytes) {
    await discard(response);
    throw refusal(limit, source);
  }
  if (response.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = response.body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    length += read.value.length;
    if (length > limit.bytes) {
      await reader.cancel().catch(() => undefined);
      throw refusal(limit, source);
    }
    chunks.push(read.value);
  }
  return Buffer.concat(chunks, length);
}

/**
 * The body to relay: the upstream's own stream when it announces a length
 * within the cap, else the bytes read up to it, with `headers` (the relayed
 * ones) given the length that then holds.
 */
export async function cappedBody(response: Response, limit: BodyLimit, source: string, headers: Headers): Promise<ReadableStream<Uint8Array> | Uint8Array | null> {
  const announced = announcedLength(response);
  if (announced !== undefined && announced <= limit.bytes) return response.body;
  const bytes = await readCapped(response, limit, source);
  headers.set("content-length", String(bytes.length));
  return bytes;
}

/** The body's length as the HTTP framing fixes it, when it does. */
export function announcedLength(response: Response): number | undefined {
  if (response.headers.has("transfer-encoding")) return undefined;
  const header = response.headers.get("content-length");
  const length = header === null ? NaN : Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function refusal(limit: BodyLimit, source: string): RegistryError {
  const size = limit.bytes >= MiB ? `${limit.bytes / MiB} MiB` : `${limit.bytes / KiB} KiB`;
  return new RegistryError(limit.code, `upstream ${source} sent a ${limit.what} over ${size}`, { status: 502 });
}

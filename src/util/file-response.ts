/**
 * `src/util/`: small helpers for bodies shared by the cache and the edge.
 *
 * A Response whose body is a byte range of a local file, marked so that the
 * server edge can send the file itself instead of pumping a Web stream
 * through JavaScript (a cache hit should cost what a file copy costs). Any
 * other consumer just reads the ordinary stream body. The mark is the
 * Response's own class: Elysia returns a Response it is handed as is.
 */
import type { FileHandle } from "node:fs/promises";
import { onStreamEnd } from "./stream-end";

export interface FileBody {
  path: string;
  /** The file already open (its taker closes it): a temp file may be renamed or removed meanwhile. */
  handle?: FileHandle;
  start: number;
  /** Inclusive. */
  end: number;
  /** Called once when the body has been sent, failed or was abandoned. */
  done: () => void;
  /** Set while the file is still being written (a fill's temp file): how far it may be read. */
  growth?: FileGrowth;
}

/** A file still being written, read by someone at `position` (a fill's follower; cache/fill.ts). */
export interface FileGrowth {
  /**
   * Where reading from `position` must stop for now (exclusive); `position` itself when nothing
   * is there yet. Throws when the bytes will never be in the file (the fill failed).
   */
  readable(position: number): number;
  /** Resolves when `readable` may have moved. */
  grown(): Promise<void>;
}

class FileResponse extends Response {
  constructor(
    readonly file: FileBody,
    init: ResponseInit,
  ) {
    super(onStreamEnd(Bun.file(file.path).slice(file.start, file.end + 1).stream(), file.done), init);
  }
}

export function fileResponse(body: FileBody, init: ResponseInit): Response {
  let finished = false;
  const done = () => {
    if (finished) return;
    finished = true;
    body.done();
  };
  return new FileResponse({ ...body, done }, init);
}

/** The file behind a response made by `fileResponse`, if any. */
export function fileOf(response: Response): FileBody | undefined {
  return response instanceof FileResponse ? response.file : undefined;
}

/**
 * Lets a fill's follower go on as a file: once the fill is committed, or
 * before, as soon as it has fallen behind the bytes the fill keeps in memory
 * (the file then grows under it: `FileBody.growth`). A follower's Web body
 * otherwise reads the file with a new buffer per read (and the committed blob
 * through `Bun.file().stream()`, 512 KiB per read): 64 slow followers peaked
 * at 243 MB in a bare node:http server doing only that, against 68 MB for the
 * same bytes through pooled buffers. The server
 * edge accepts the handoff before reading the body; the body then ends
 * early with `rest` set, and the edge sends `rest` like a hit
 * (server/file-sender.ts). Any other consumer reads one ordinary stream.
 */
export class Handoff {
  /** Set by the server edge: it will send `rest`, so the body may end before its last byte. */
  accepted = false;
  /** Set by the body when it ended early: the rest of it, a range of a local file. */
  rest: FileBody | undefined;
}

class HandoffResponse extends Response {
  constructor(
    readonly handoff: Handoff,
    body: ReadableStream<Uint8Array>,
    init: ResponseInit,
  ) {
    super(body, init);
  }
}

/** A response whose body, made by `body`, may hand the rest of itself over as a file. */
export function handingOff(body: (handoff: Handoff) => ReadableStream<Uint8Array>, init: ResponseInit): Response {
  const handoff = new Handoff();
  return new HandoffResponse(handoff, body(handoff), init);
}

/** The handoff of a response made by `handingOff`, if any. */
export function handoffOf(response: Response): Handoff | undefined {
  return response instanceof HandoffResponse ? response.handoff : undefined;
}

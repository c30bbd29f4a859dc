/**
 * `src/util/`: small helpers for bodies shared by the cache and the edge.
 *
 * A Response whose body is a byte range of a local file, marked so that the
 * server edge can send the file itself instead of pumping a Web stream
 * through JavaScript (a cache hit should cost what a file copy costs). Any
 * other consumer just reads the ordinary stream body. The mark is the
 * Response's own class: Elysia returns a Response it is handed as is.
 */
import { onStreamEnd } from "./stream-end";

export interface FileBody {
  path: string;
  start: number;
  /** Inclusive. */
  end: number;
  /** Called once when the body has been sent, failed or was abandoned. */
  done: () => void;
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

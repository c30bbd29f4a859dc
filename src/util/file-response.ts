/**
 * A Response whose body is a byte range of a local file, marked so that the
 * server edge can send the file itself instead of pumping a Web stream
 * through JavaScript (a cache hit should cost what a file copy costs). Any
 * other consumer just reads the ordinary stream body.
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

const files = new WeakMap<Response, FileBody>();

export function fileResponse(body: FileBody, init: ResponseInit): Response {
  let finished = false;
  const done = () => {
    if (finished) return;
    finished = true;
    body.done();
  };
  const stream = onStreamEnd(Bun.file(body.path).slice(body.start, body.end + 1).stream(), done);
  const response = new Response(stream, init);
  files.set(response, { ...body, done });
  return response;
}

/** The file behind a response made by `fileResponse`, if any. */
export function fileOf(response: Response): FileBody | undefined {
  return files.get(response);
}

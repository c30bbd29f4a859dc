/**
 * A fill running on another node of the fleet, as the follower's blob cache
 * sees it: a FillInProgress (cache/coordination.ts) whose bytes come from the
 * owner's `/_fleet/fills/<digest>` (http/routes/fleet.ts), asked with a
 * signed request per read and the client's range. The owner holds back each
 * read's last byte until the blob is verified, so a follower's body is
 * complete only if the blob is right; if the owner dies or its fill fails,
 * its answer is cut and so is the follower's client: never a short body that
 * looks whole (every read counts its bytes against the Content-Length the
 * owner promised, and errors on fewer).
 */
import type { FillInProgress } from "../cache/coordination";
import { FLEET_SIGNATURE_HEADER, type FleetSigner } from "./signing";

type BodyReader = { read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }> };

export const FLEET_FILLS_PATH = "/_fleet/fills/";
/** How long an owner may take to start answering; the bytes then flow at the upstream's pace. */
const ANSWER_TIMEOUT_MS = 5_000;

export class PeerFill implements FillInProgress {
  readonly joinable = true;

  private constructor(
    private readonly url: string,
    private readonly path: string,
    private readonly signer: FleetSigner,
    readonly size: number,
  ) {}

  /**
   * The owner's fill of `digest`; "none" when the owner answered that it has
   * none (its fill failed, or the blob left its store), "unreachable" when it
   * did not answer (it died, or is cut off).
   */
  static async open(owner: string, digest: string, signer: FleetSigner): Promise<PeerFill | "none" | "unreachable"> {
    const path = FLEET_FILLS_PATH + digest;
    const url = new URL(path, owner).href;
    try {
      const response = await fetch(url, {
        method: "HEAD",
        headers: { [FLEET_SIGNATURE_HEADER]: signer.sign("HEAD", path) },
        signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
      });
      const size = Number(response.headers.get("content-length") ?? NaN);
      if (response.status !== 200 || !Number.isSafeInteger(size)) return "none";
      return new PeerFill(url, path, signer, size);
    } catch {
      return "unreachable";
    }
  }

  read(start: number, end: number): ReadableStream<Uint8Array> {
    const expected = end - start + 1;
    const aborter = new AbortController();
    let body: BodyReader | undefined;
    let received = 0;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            body ??= await this.request(start, end, aborter.signal);
            const { value, done } = await body.read();
            if (done) {
              if (received !== expected) throw new Error(`owner node sent ${received} of ${expected} bytes`);
              return controller.close();
            }
            received += value.length;
            if (received > expected) throw new Error(`owner node sent more than ${expected} bytes`);
            controller.enqueue(value);
          } catch (error) {
            aborter.abort();
            controller.error(error);
          }
        },
        cancel: () => aborter.abort(),
      },
      { highWaterMark: 0 },
    );
  }

  private async request(start: number, end: number, signal: AbortSignal): Promise<BodyReader> {
    // Only until the answer starts: fetch's signal also cuts the body, which may take long.
    const aborter = new AbortController();
    const timer = setTimeout(() => aborter.abort(new Error("owner node did not answer in time")), ANSWER_TIMEOUT_MS);
    let response: Response;
    try {
      response = await fetch(this.url, {
        headers: { range: `bytes=${start}-${end}`, [FLEET_SIGNATURE_HEADER]: this.signer.sign("GET", this.path) },
        signal: AbortSignal.any([signal, aborter.signal]),
      });
    } finally {
      clearTimeout(timer);
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    if (response.status !== 206 || length !== end - start + 1 || !response.body) {
      void response.body?.cancel().catch(() => undefined);
      throw new Error(`owner node answered ${response.status} for bytes ${start}-${end}`);
    }
    return response.body.getReader();
  }
}

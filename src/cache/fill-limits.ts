/**
 * How many blob fills may run at once, in all and per client address, and
 * how many bytes of temp files they may hold between them. A fill runs on
 * after its client leaves (continue_on_disconnect), so without these bounds
 * an anonymous client abandoning requests for distinct large blobs would
 * start unlimited background downloads, each with its temp file and memory.
 *
 * A fill counts against the address that started it until the fill ends,
 * even after that client left; joining a fill is free. Beyond the per-address
 * limit the answer is 429 (that client should slow down); beyond the global
 * count or bytes it is 503 (docxy is busy for everyone). Both carry
 * Retry-After, which Docker and containerd honour between layer retries.
 */
import { RegistryError } from "../oci/errors";
import { limitKey } from "../policy/rate-limiter";

export interface FillLimitSettings {
  maxFills: number;
  maxFillsPerClient: number;
  /** Content-Length summed over fills in progress. */
  maxFillBytes: number;
}

export type RefusalReason = "client" | "fills" | "bytes";

/** Fills end within seconds to minutes; a client retrying sooner would only be refused again. */
const RETRY_AFTER_SECONDS = 10;

export interface FillSlot {
  /** Counts the fill's size once the upstream has announced it; throws (and frees the slot) past the byte limit. */
  size(bytes: number): void;
  /** Frees the slot; later calls do nothing. */
  release(): void;
}

export class FillLimits {
  private fills = 0;
  private bytes = 0;
  private readonly perClient = new Map<string, number>();
  readonly refused: Record<RefusalReason, number> = { client: 0, fills: 0, bytes: 0 };

  constructor(private readonly settings: FillLimitSettings) {}

  /** Bytes of temp files that fills in progress will hold when complete. */
  get bytesInFlight(): number {
    return this.bytes;
  }

  /**
   * A slot for a new fill started by `client` (its address; IPv6 counted per
   * /64 like the rate limits), or a RegistryError when a count limit is reached.
   * Taken before the upstream request so a refused fill costs the upstream nothing.
   */
  reserve(client: string | undefined): FillSlot {
    const key = client === undefined ? undefined : limitKey(client);
    const { maxFills, maxFillsPerClient } = this.settings;
    if (key !== undefined && (this.perClient.get(key) ?? 0) >= maxFillsPerClient) {
      throw this.refuse("client", "TOOMANYREQUESTS", `too many blob downloads started from this address (${maxFillsPerClient} at once)`);
    }
    if (this.fills >= maxFills) throw this.refuse("fills", "UNAVAILABLE", `too many blob downloads in progress (${maxFills} at once)`);
    this.fills++;
    if (key !== undefined) this.perClient.set(key, (this.perClient.get(key) ?? 0) + 1);
    let counted = 0;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.fills--;
      this.bytes -= counted;
      if (key === undefined) return;
      const left = (this.perClient.get(key) ?? 1) - 1;
      if (left > 0) this.perClient.set(key, left);
      else this.perClient.delete(key);
    };
    return {
      size: (bytes) => {
        // A blob larger than the whole budget is still filled when nothing else is: it would never be otherwise.
        if (this.bytes > 0 && this.bytes + bytes > this.settings.maxFillBytes) {
          release();
          throw this.refuse("bytes", "UNAVAILABLE", "too many bytes of blob downloads in progress");
        }
        this.bytes += bytes;
        counted = bytes;
      },
      release,
    };
  }

  private refuse(reason: RefusalReason, code: "TOOMANYREQUESTS" | "UNAVAILABLE", message: string): RegistryError {
    this.refused[reason]++;
    return new RegistryError(code, `${message}, retry in ${RETRY_AFTER_SECONDS}s`, {
      detail: { retryAfterSeconds: RETRY_AFTER_SECONDS },
      headers: { "retry-after": String(RETRY_AFTER_SECONDS) },
    });
  }
}

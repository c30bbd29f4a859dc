/**
 * The fill limits in process, on FillLimits itself: counts per address and in
 * all, bytes in flight. Through the binary: tests/integration/cache/fill-limits.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { FillLimits } from "../../src/cache/fill-limits";
import { RegistryError } from "../../src/oci/errors";

const MIB = 1024 * 1024;

function refusal(run: () => unknown): { code: string; status: number; retryAfter: string | undefined } | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    return { code: error.ociCode, status: error.status, retryAfter: error.headers["retry-after"] };
  }
}

describe("FillLimits", () => {
  test("per address, then in all; a released slot is free again; IPv6 counts per /64", () => {
    const limits = new FillLimits({ maxFills: 3, maxFillsPerClient: 2, maxFillBytes: 100 });
    const a1 = limits.reserve("2001:db8::1");
    limits.reserve("2001:db8::2"); // the same /64
    expect(refusal(() => limits.reserve("2001:db8::3"))).toEqual({ code: "TOOMANYREQUESTS", status: 429, retryAfter: "10" });
    limits.reserve("10.0.0.1");
    expect(refusal(() => limits.reserve("10.0.0.2"))).toEqual({ code: "UNAVAILABLE", status: 503, retryAfter: "10" });
    a1.release();
    a1.release(); // once only
    expect(refusal(() => limits.reserve("2001:db8::3"))).toBeUndefined();
    expect(refusal(() => limits.reserve("10.0.0.2"))).toMatchObject({ code: "UNAVAILABLE" });
    expect(limits.refused).toEqual({ client: 1, fills: 2, bytes: 0 });
  });

  test("bytes in flight: a fill past the budget is refused and frees its slot; one blob alone may exceed it", () => {
    const limits = new FillLimits({ maxFills: 10, maxFillsPerClient: 10, maxFillBytes: 100 });
    const huge = limits.reserve("10.0.0.1");
    huge.size(500); // nothing else in flight: it would never be filled otherwise
    expect(limits.bytesInFlight).toBe(500);
    const next = limits.reserve("10.0.0.1");
    expect(refusal(() => next.size(1))).toEqual({ code: "UNAVAILABLE", status: 503, retryAfter: "10" });
    huge.release();
    expect(limits.bytesInFlight).toBe(0);
    const a = limits.reserve("10.0.0.1");
    a.size(60);
    expect(refusal(() => limits.reserve("10.0.0.1").size(41))).toMatchObject({ code: "UNAVAILABLE" });
    limits.reserve("10.0.0.1").size(40);
    expect({ bytes: limits.bytesInFlight, refused: limits.refused }).toEqual({ bytes: 100, refused: { client: 0, fills: 0, bytes: 2 } });
  });
});

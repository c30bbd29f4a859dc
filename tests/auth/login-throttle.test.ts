/** LoginThrottle on the in-memory store, with a hand-driven clock. */
import { expect, test } from "bun:test";
import { LoginThrottle } from "../../src/auth/login-throttle";
import { RegistryError } from "../../src/oci/errors";
import { MemoryRateLimitStore } from "../../src/policy/rate-limiter";

function throttle(perAddress: number, perName: number) {
  const clock = { now: 1_000_000 };
  return { clock, throttle: new LoginThrottle({ store: new MemoryRateLimitStore(), perAddress, perName, now: () => clock.now }) };
}

/** The 429's Retry-After, or "open" when the check passes. */
async function outcome(check: Promise<void>): Promise<string> {
  try {
    await check;
    return "open";
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    const e = error as RegistryError;
    expect([e.ociCode, e.status]).toEqual(["TOOMANYREQUESTS", 429]);
    return `retry-after ${e.headers["retry-after"]}`;
  }
}

test("past the failures allowed per address, every name from that address waits for the window's end; other addresses do not", async () => {
  const { clock, throttle: t } = throttle(3, 100);
  for (const name of ["a", "b", "c"]) {
    expect(await outcome(t.check("192.0.2.7", name))).toBe("open");
    await t.failed("192.0.2.7", name);
  }
  clock.now += 15_000;
  expect(await outcome(t.check("192.0.2.7", "d"))).toBe("retry-after 45");
  expect(await outcome(t.check("192.0.2.8", "d"))).toBe("open");
  clock.now += 45_000;
  expect(await outcome(t.check("192.0.2.7", "d"))).toBe("open");
});

test("past the failures allowed per name, that name waits from every address", async () => {
  const { throttle: t } = throttle(100, 2);
  await t.failed("192.0.2.1", "alice");
  await t.failed("198.51.100.1", "alice");
  expect(await outcome(t.check("203.0.113.9", "alice"))).toBe("retry-after 60");
  expect(await outcome(t.check("203.0.113.9", "bob"))).toBe("open");
});

test("an IPv6 client is counted per /64, however many addresses it picks", async () => {
  const { throttle: t } = throttle(2, 100);
  await t.failed("2001:db8:1:2::a", "x");
  await t.failed("2001:db8:1:2:ffff::b", "y");
  expect(await outcome(t.check("2001:db8:1:2::c", "z"))).toBe("retry-after 60");
  expect(await outcome(t.check("2001:db8:1:3::a", "z"))).toBe("open");
});

test("checks count nothing, and 0 means unlimited", async () => {
  const { throttle: t } = throttle(1, 0);
  for (let i = 0; i < 5; i++) expect(await outcome(t.check("192.0.2.1", "alice"))).toBe("open");
  const unlimited = throttle(0, 0).throttle;
  for (let i = 0; i < 50; i++) await unlimited.failed("192.0.2.1", "alice");
  expect(await outcome(unlimited.check("192.0.2.1", "alice"))).toBe("open");
});

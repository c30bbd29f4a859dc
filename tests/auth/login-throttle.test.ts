/** LoginThrottle on the in-memory store, with a hand-driven clock. */
import { expect, test } from "bun:test";
import { LoginThrottle } from "../../src/auth/login-throttle";
import { RegistryError } from "../../src/oci/errors";
import { MemoryRateLimitStore } from "../../src/policy/rate-limiter";

function throttle(perAddress: number, perName: number) {
  const clock = { now: 1_000_000 };
  return { clock, throttle: new LoginThrottle({ store: new MemoryRateLimitStore(), perAddress, perName, now: () => clock.now }) };
}

const wrong = async () => false;
const right = async () => true;

/** The 429's Retry-After, or what the check said when it ran. */
async function outcome(attempt: Promise<boolean>): Promise<string> {
  try {
    return (await attempt) ? "verified" : "refused";
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    const e = error as RegistryError;
    expect([e.ociCode, e.status]).toEqual(["TOOMANYREQUESTS", 429]);
    return `retry-after ${e.headers["retry-after"]}`;
  }
}

test("past the failures allowed per address, every name from that address waits for the window's end; other addresses do not", async () => {
  const { clock, throttle: t } = throttle(3, 100);
  for (const name of ["a", "b", "c"]) expect(await outcome(t.attempt("192.0.2.7", name, wrong))).toBe("refused");
  clock.now += 15_000;
  expect(await outcome(t.attempt("192.0.2.7", "d", right))).toBe("retry-after 45");
  expect(await outcome(t.attempt("192.0.2.8", "d", right))).toBe("verified");
  clock.now += 45_000;
  expect(await outcome(t.attempt("192.0.2.7", "d", right))).toBe("verified");
});

test("past the failures allowed per name, that name waits from every address", async () => {
  const { throttle: t } = throttle(100, 2);
  await t.attempt("192.0.2.1", "alice", wrong);
  await t.attempt("198.51.100.1", "alice", wrong);
  expect(await outcome(t.attempt("203.0.113.9", "alice", right))).toBe("retry-after 60");
  expect(await outcome(t.attempt("203.0.113.9", "bob", right))).toBe("verified");
});

test("an IPv6 client is counted per /64, however many addresses it picks", async () => {
  const { throttle: t } = throttle(2, 100);
  await t.attempt("2001:db8:1:2::a", "x", wrong);
  await t.attempt("2001:db8:1:2:ffff::b", "y", wrong);
  expect(await outcome(t.attempt("2001:db8:1:2::c", "z", right))).toBe("retry-after 60");
  expect(await outcome(t.attempt("2001:db8:1:3::a", "z", right))).toBe("verified");
});

test("successful logins count nothing, and 0 means unlimited", async () => {
  const { throttle: t } = throttle(1, 1);
  for (let i = 0; i < 5; i++) expect(await outcome(t.attempt("192.0.2.1", "alice", right))).toBe("verified");
  const unlimited = throttle(0, 0).throttle;
  for (let i = 0; i < 50; i++) await unlimited.attempt("192.0.2.1", "alice", wrong);
  expect(await outcome(unlimited.attempt("192.0.2.1", "alice", right))).toBe("verified");
});

test("guesses sent all at once get no more checks than the limit: checks in flight count", async () => {
  const { throttle: t } = throttle(3, 100);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let checks = 0;
  const slowWrong = async () => {
    checks++;
    await held;
    return false;
  };
  const attempts = Array.from({ length: 10 }, (_, i) => outcome(t.attempt("192.0.2.9", `name${i}`, slowWrong)));
  release();
  const outcomes = await Promise.all(attempts);
  expect(checks).toBe(3);
  expect(outcomes.filter((o) => o === "refused")).toHaveLength(3);
  expect(outcomes.filter((o) => o === "retry-after 1")).toHaveLength(7);
  // the three failures now hold the address for the rest of the window
  expect(await outcome(t.attempt("192.0.2.9", "late", right))).toBe("retry-after 60");
});

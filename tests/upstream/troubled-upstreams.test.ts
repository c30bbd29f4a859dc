/**
 * The circuit breaker of upstream fallbacks, on a clock the test moves. How
 * pulls use it, against real registries: tests/upstream/fallbacks.test.ts;
 * through the binary: tests/integration/upstream/fallbacks.test.ts.
 */
import { expect, test } from "bun:test";
import { TroubledUpstreams } from "../../src/upstream/troubled-upstreams";

function breaker() {
  let now = 1_000_000;
  const changes: [string, number | undefined][] = [];
  const troubled = new TroubledUpstreams({ now: () => now, changed: (upstream, ms) => changes.push([upstream, ms]) });
  return { troubled, changes, advance: (ms: number) => (now += ms) };
}

test("an upstream never in trouble is asked first", () => {
  const { troubled } = breaker();
  expect([troubled.skips("hub"), troubled.skips("hub")]).toEqual([false, false]);
});

test("after trouble it is skipped for 30 s, then one request asks it while the others keep skipping it", () => {
  const { troubled, changes, advance } = breaker();
  troubled.inTrouble("hub");
  expect(changes).toEqual([["hub", 30_000]]);
  expect(troubled.skips("hub")).toBe(true);
  expect(troubled.skips("ghcr")).toBe(false); // per upstream
  advance(29_999);
  expect(troubled.skips("hub")).toBe(true);
  advance(1);
  expect([troubled.skips("hub"), troubled.skips("hub"), troubled.skips("hub")]).toEqual([false, true, true]);
});

test("the asking request's answer ends the trouble; trouble again starts another cooldown, told once", () => {
  const { troubled, changes, advance } = breaker();
  troubled.inTrouble("hub");
  advance(30_000);
  expect(troubled.skips("hub")).toBe(false);
  troubled.inTrouble("hub");
  expect(troubled.skips("hub")).toBe(true);
  advance(30_000);
  expect(troubled.skips("hub")).toBe(false);
  troubled.answered("hub");
  expect([troubled.skips("hub"), troubled.skips("hub")]).toEqual([false, false]);
  expect(changes).toEqual([
    ["hub", 30_000],
    ["hub", undefined],
  ]);
  troubled.answered("hub"); // already answering: nothing to tell
  expect(changes).toHaveLength(2);
});

test("a request that gave up (its client left) lets the next one ask the upstream", () => {
  const { troubled, advance } = breaker();
  troubled.inTrouble("hub");
  advance(30_000);
  expect(troubled.skips("hub")).toBe(false);
  expect(troubled.skips("hub")).toBe(true);
  troubled.gaveUp("hub");
  expect(troubled.skips("hub")).toBe(false);
});

test("a 429's Retry-After sets the cooldown, within 30 s and 5 min; a date or nonsense means 30 s", () => {
  const { troubled, changes } = breaker();
  troubled.inTrouble("a", "120");
  troubled.inTrouble("b", "5");
  troubled.inTrouble("c", "86400");
  troubled.inTrouble("d", "Wed, 21 Oct 2026 07:28:00 GMT");
  troubled.inTrouble("e", "-3");
  expect(changes).toEqual([
    ["a", 120_000],
    ["b", 30_000],
    ["c", 300_000],
    ["d", 30_000],
    ["e", 30_000],
  ]);
});

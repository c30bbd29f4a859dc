import { expect, test } from "bun:test";
import { Account, accountsFrom, pickAccount } from "../../src/upstream/accounts";

test("Docker Hub's quota header steers the choice; an exhausted account rests until its window ends", () => {
  const a = new Account("a", () => "x");
  const b = new Account("b", () => "y");
  expect(pickAccount([a, b])).toBe(a); // nothing known yet: the first
  a.observe(new Headers({ "ratelimit-remaining": "3;w=21600" }), 1000);
  b.observe(new Headers({ "ratelimit-remaining": "40;w=21600" }), 1000);
  expect(pickAccount([a, b], 1000)).toBe(b);
  b.observe(new Headers({ "ratelimit-remaining": "0;w=60" }), 2000);
  expect(pickAccount([a, b], 2000)).toBe(a);
  expect(pickAccount([a, b], 2000 + 60_000)).toBe(a); // b is back but has 0 left until it says otherwise
  a.observe(new Headers({ "ratelimit-remaining": "0;w=60" }), 3000);
  expect(pickAccount([a, b], 3000)?.username).toBe("b"); // all rested: let the upstream decide
  expect(pickAccount([])).toBeUndefined();
});

test("an exhausted account without a window in its header rests for Docker Hub's 6-hour window, not an hour", () => {
  const a = new Account("a", () => "x");
  const b = new Account("b", () => "y");
  a.observe(new Headers({ "ratelimit-remaining": "0" }), 0);
  b.observe(new Headers({ "ratelimit-remaining": "0;w=7200" }), 0);
  // after an hour both still rest; b (2 h) is back sooner than a (6 h)
  expect(pickAccount([a, b], 3_600_000 + 1)).toBe(b);
  expect(pickAccount([a, b], 7_200_000 + 1)).toBe(b);
  expect(a.restedUntil).toBe(21_600_000);
});

test("secrets come from one source and never show in strings or JSON", () => {
  const [account] = accountsFrom([{ username: "bot", password_env: "PW" }], "k", { PW: "hunter2" });
  expect(account!.basic()).toBe(`Basic ${Buffer.from("bot:hunter2").toString("base64")}`);
  expect(`${account}`).not.toContain("hunter2");
  expect(JSON.stringify(account)).not.toContain("hunter2");
  expect(() => accountsFrom([{ username: "bot", password: "a", password_env: "PW" }], "k", {})).toThrow("k[0]: set exactly one of");
  expect(() => accountsFrom([{ username: "bot", password_file: "/nonexistent" }], "k", {})).toThrow("k[0].password_file: cannot read");
});

/**
 * ProxyTokens: issue and verify round trips, what is granted from the
 * requested scopes, expiry on an injected clock, forged and garbage tokens,
 * and refresh tokens bound to the user's credentials.
 */
import { expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { ProxyTokens, type VerifiedToken } from "../../src/auth/proxy-tokens";

const secret = ProxyTokens.secretFrom("a configured secret of at least 32 characters");
const START = Date.parse("2025-01-01T00:00:00Z");

function tokensAt(time = START, ttlSeconds = 300) {
  const clock = { time, now: () => clock.time };
  return { tokens: new ProxyTokens({ secret, ttlSeconds, now: clock.now }), clock };
}

function decode(segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
}

const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

test("an issued token has the token-response shape and verifies to its user and pull grants", () => {
  const { tokens } = tokensAt(START + 789); // milliseconds are dropped: issued_at and iat agree
  const response = tokens.issue("alice", ["repository:library/alpine:pull"]);
  expect(response).toEqual({
    token: response.access_token,
    access_token: response.token,
    expires_in: 300,
    issued_at: "2025-01-01T00:00:00.000Z",
  });
  const [header, payload] = response.token.split(".");
  expect(decode(header!)).toEqual({ alg: "HS256", typ: "JWT" });
  const claims = decode(payload!);
  expect(claims).toMatchObject({
    iss: "docxy",
    sub: "alice",
    iat: START / 1000,
    nbf: START / 1000,
    exp: START / 1000 + 300,
    access: [{ type: "repository", name: "library/alpine", actions: ["pull"] }],
  });
  expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(tokens.issue("alice", []).token).not.toBe(tokens.issue("alice", []).token); // jti differs

  expect(tokens.verify(response.token)).toEqual({
    user: "alice",
    access: [{ type: "repository", name: "library/alpine", actions: ["pull"] }],
  });
});

test("grants: pull only, names split at the first and last colon, classes, OAuth2 space-separated scopes, duplicates merged", () => {
  const { tokens } = tokensAt();
  const scopes = [
    "repository:localhost:5000/team/app:pull,push",
    "repository:ghcr.io/x/y:pull repository:quay.io/a/b:*",
    "repository(plugin):vieux/sshfs:pull",
    "repository:library/alpine:pull",
    "repository:library/alpine:pull",
    "repository:push/only:push",
    "registry:catalog:*",
    "repository:no-actions",
    "repository:bad name:pull",
    `repository:${"a".repeat(256)}:pull`,
    "",
  ];
  const verified = tokens.verify(tokens.issue("ci", scopes).token)!;
  expect(verified.access).toEqual(
    ["localhost:5000/team/app", "ghcr.io/x/y", "quay.io/a/b", "vieux/sshfs", "library/alpine"].map((name) => ({
      type: "repository",
      name,
      actions: ["pull"],
    })),
  );
  expect(tokens.verify(tokens.issue("ci", []).token)).toEqual({ user: "ci", access: [] });
});

test("allows: pull on exactly the repository named, as the client wrote it", () => {
  const { tokens } = tokensAt();
  const verified = tokens.verify(tokens.issue("ci", ["repository:ghcr.io/x/y:pull", "repository:library/alpine:pull"]).token)!;
  expect(tokens.allows(verified, "ghcr.io/x/y")).toBe(true);
  expect(tokens.allows(verified, "library/alpine")).toBe(true);
  expect(tokens.allows(verified, "x/y")).toBe(false); // the prefix is part of the name the client uses
  expect(tokens.allows(verified, "alpine")).toBe(false);
  expect(tokens.allows(verified, "ghcr.io/x/y/z")).toBe(false);
  expect(tokens.allows(verified, "ghcr.io/x")).toBe(false);
  expect(tokens.allows(verified, "*")).toBe(false);
  // entries without pull (which docxy never issues) or of another type grant nothing
  const crafted: VerifiedToken = {
    user: "ci",
    access: [
      { type: "repository", name: "a/b", actions: ["push"] },
      { type: "registry", name: "c/d", actions: ["pull"] },
    ],
  };
  expect(tokens.allows(crafted, "a/b")).toBe(false);
  expect(tokens.allows(crafted, "c/d")).toBe(false);
});

test("the most a token can grant stays a verifiable token under 8 KiB", () => {
  const { tokens } = tokensAt();
  const scopes = Array.from({ length: 40 }, (_, i) => `repository:${`${i}`.padEnd(255, "x")}:pull,push,delete,*`);
  const { token } = tokens.issue("a".repeat(64), scopes);
  expect(token.length).toBeLessThan(8192);
  expect(tokens.verify(token)!.access).toHaveLength(16);
});

test("expiry and not-before count with 30 seconds of leeway", () => {
  const { tokens, clock } = tokensAt();
  const { token } = tokens.issue("alice", ["repository:a/b:pull"]);
  clock.time = START + (300 + 29) * 1000;
  expect(tokens.verify(token)?.user).toBe("alice");
  clock.time = START + (300 + 30) * 1000;
  expect(tokens.verify(token)).toBeUndefined();
  clock.time = START - 29 * 1000; // the issuing node's clock a little ahead
  expect(tokens.verify(token)?.user).toBe("alice");
  clock.time = START - 31 * 1000;
  expect(tokens.verify(token)).toBeUndefined();
});

test("tampered, unsigned, foreign and garbage tokens are refused without throwing", () => {
  const { tokens } = tokensAt();
  const { token } = tokens.issue("alice", ["repository:a/b:pull"]);
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const claims = decode(payload);
  const forged = b64({ ...claims, sub: "admin" });
  const widened = b64({ ...claims, access: [{ type: "repository", name: "secret/app", actions: ["pull"] }] });
  const other = new ProxyTokens({ secret: ProxyTokens.secretFrom(undefined), ttlSeconds: 300, now: () => START });
  const accessKey = createHmac("sha256", secret).update("docxy access token").digest();
  const sign = (h: string, p: string, key: Buffer = accessKey) => `${h}.${p}.${createHmac("sha256", key).update(`${h}.${p}`).digest("base64url")}`;

  expect(tokens.verify(sign(header, payload))?.user).toBe("alice"); // the test's signing matches
  const refused = [
    `${header}.${forged}.${signature}`,
    `${header}.${widened}.${signature}`,
    `${header}.${payload}.${signature.slice(0, -1)}${signature.endsWith("A") ? "B" : "A"}`,
    `${header}.${payload}.${signature}=`,
    `${header}.${payload}.`,
    `${header}.${payload}`,
    `${token}.extra`,
    // alg none, with and without a signature; another algorithm; extra header fields
    `${b64({ alg: "none", typ: "JWT" })}.${payload}.`,
    `${b64({ alg: "none" })}.${payload}.${signature}`,
    sign(b64({ alg: "HS512", typ: "JWT" }), payload),
    sign(b64({ alg: "HS256", typ: "JWT", crit: ["x"] }), payload),
    sign(b64({ typ: "JWT", alg: "HS256" }), payload),
    // correctly signed by someone else, or by docxy but not a docxy access token
    other.issue("alice", ["repository:a/b:pull"]).token,
    tokens.issueRefresh("alice", "stamp"),
    sign(header, b64({ ...claims, iss: "someone-else" })),
    sign(header, b64({ ...claims, sub: 42 })),
    sign(header, b64({ ...claims, exp: "never" })),
    sign(header, b64({ ...claims, nbf: undefined })),
    sign(header, b64({ ...claims, access: undefined })),
    sign(header, b64({ ...claims, access: [{ type: "repository", name: "a/b" }] })),
    sign(header, b64({ ...claims, access: [null] })),
    sign(header, b64([claims])),
    sign(header, b64("null")),
    sign(header, b64("{not json")),
    sign(header, Buffer.from([0xff, 0xfe, 0x7b]).toString("base64url")), // not UTF-8
    sign(header, "pay+load/"),
    // garbage
    "",
    ".",
    "..",
    "...",
    "not a token",
    "Bearer " + token,
    token + " ",
    "a".repeat(100_000),
    `${header}.${"A".repeat(100_000)}.${signature}`,
    "\u0000\uffff.\ud800.%",
  ];
  for (const candidate of refused) expect(tokens.verify(candidate)).toBeUndefined();
});

test("refresh tokens verify to their user while the credential stamp is unchanged", () => {
  const { tokens, clock } = tokensAt();
  const stamps = new Map([["alice", "stamp-1"]]);
  const current = (user: string) => stamps.get(user);
  const refresh = tokens.issueRefresh("alice", "stamp-1");

  expect(tokens.verifyRefresh(refresh, current)).toBe("alice");
  expect(tokens.verify(refresh)).toBeUndefined(); // not an access token
  expect(tokens.verifyRefresh(tokens.issue("alice", []).token, current)).toBeUndefined(); // nor the other way round
  expect(tokens.verifyRefresh(`${refresh}x`, current)).toBeUndefined();
  expect(tokens.verifyRefresh("garbage", current)).toBeUndefined();

  clock.time = START + 29 * 24 * 3600 * 1000;
  expect(tokens.verifyRefresh(refresh, current)).toBe("alice");
  clock.time = START + 31 * 24 * 3600 * 1000;
  expect(tokens.verifyRefresh(refresh, current)).toBeUndefined();
  clock.time = START;

  stamps.set("alice", "stamp-2"); // password changed
  expect(tokens.verifyRefresh(refresh, current)).toBeUndefined();
  stamps.delete("alice"); // user removed
  expect(tokens.verifyRefresh(refresh, current)).toBeUndefined();

  const another = new ProxyTokens({ secret: ProxyTokens.secretFrom(undefined), ttlSeconds: 60 });
  expect(another.verifyRefresh(refresh, () => "stamp-1")).toBeUndefined();
});

test("secrets and lifetimes are checked", () => {
  expect(ProxyTokens.secretFrom("x".repeat(32))).toEqual(new TextEncoder().encode("x".repeat(32)));
  expect(() => ProxyTokens.secretFrom("x".repeat(31))).toThrow(RangeError);
  expect(() => ProxyTokens.secretFrom("")).toThrow(RangeError);
  const random = ProxyTokens.secretFrom(undefined);
  expect(random).toHaveLength(32);
  expect(ProxyTokens.secretFrom(undefined)).not.toEqual(random);

  expect(() => new ProxyTokens({ secret: new Uint8Array(31), ttlSeconds: 300 })).toThrow(RangeError);
  expect(() => new ProxyTokens({ secret, ttlSeconds: 59 })).toThrow(RangeError);
  expect(() => new ProxyTokens({ secret, ttlSeconds: 60.5 })).toThrow(RangeError);
  expect(new ProxyTokens({ secret, ttlSeconds: 60 }).issue("a", []).expires_in).toBe(60);
});

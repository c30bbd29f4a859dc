/** docxy's own token endpoint, in process: real users file, real tokens, real throttle. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LoginThrottle } from "../../src/auth/login-throttle";
import { ProxyLogin } from "../../src/auth/proxy-login";
import { ProxyTokens } from "../../src/auth/proxy-tokens";
import { ProxyUsers } from "../../src/auth/users";
import { MemoryRateLimitStore } from "../../src/policy/rate-limiter";
import { removeAtExit } from "../support/cleanup";
import { htpasswdLine } from "../support/htpasswd";

const dir = mkdtempSync(join(tmpdir(), "docxy-proxy-login-"));
removeAtExit(dir);
const htpasswdPath = join(dir, "htpasswd");
writeFileSync(htpasswdPath, await htpasswdLine("alice", "alice-pw"));
const users = await ProxyUsers.open({ htpasswdPath, tokens: ["ci:static-token-of-ci-0123456789"] });
const tokens = new ProxyTokens({ secret: ProxyTokens.secretFrom(undefined), ttlSeconds: 300 });
const login = new ProxyLogin(users, tokens, new LoginThrottle({ store: new MemoryRateLimitStore(), perAddress: 3, perName: 100 }));
afterAll(() => users.close());

const basic = (name: string, password: string) => `Basic ${Buffer.from(`${name}:${password}`).toString("base64")}`;
const query = (text: string) => new URLSearchParams(text);
type Body = { token?: string; access_token?: string; refresh_token?: string; scope?: string; expires_in?: number; details?: string };

test("GET with Basic credentials: a token granting the scopes asked for, no refresh token unless asked", async () => {
  const response = await login.exchange({ query: query("scope=repository:acme/app:pull"), authorization: basic("alice", "alice-pw"), client: "192.0.2.1" });
  expect(response.status).toBe(200);
  const body = (await response.json()) as Body;
  expect(body.access_token).toBe(body.token!);
  expect(body.expires_in).toBe(300);
  expect(body.refresh_token).toBeUndefined();
  expect(body.scope).toBeUndefined(); // the form's echo only
  const verified = tokens.verify(body.token!)!;
  expect(verified.user).toBe("alice");
  expect(tokens.allows(verified, "acme/app")).toBe(true);
  expect(tokens.allows(verified, "acme/other")).toBe(false);
});

test("a static token works as the password", async () => {
  const response = await login.exchange({ query: query(""), authorization: basic("ci", "static-token-of-ci-0123456789"), client: "192.0.2.1" });
  expect(response.status).toBe(200);
  expect(tokens.verify(((await response.json()) as Body).token!)?.user).toBe("ci");
});

test("POST grant_type=password with offline_token gets a refresh token; grant_type=refresh_token trades it for a new token", async () => {
  const form = query("grant_type=password&username=alice&password=alice-pw&scope=repository:acme/app:pull&access_type=offline");
  const first = (await (await login.exchange({ query: query(""), form, authorization: null, client: "192.0.2.2" })).json()) as Body;
  expect(first.scope).toBe("repository:acme/app:pull");
  expect(first.refresh_token).toBeString();
  const refresh = query(`grant_type=refresh_token&refresh_token=${first.refresh_token}&scope=repository:acme/app:pull`);
  const second = await login.exchange({ query: query(""), form: refresh, authorization: null, client: "192.0.2.2" });
  expect(second.status).toBe(200);
  expect(tokens.verify(((await second.json()) as Body).token!)?.user).toBe("alice");
});

test("wrong or missing credentials: a token service's 401 JSON with a Basic challenge, never the password", async () => {
  const wrong = await login.exchange({ query: query(""), authorization: basic("alice", "nope"), client: "192.0.2.3" });
  expect(wrong.status).toBe(401);
  expect(wrong.headers.get("www-authenticate")).toBe('Basic realm="docxy"');
  expect(await wrong.json()).toEqual({ details: "incorrect username or password" });
  const none = await login.exchange({ query: query(""), authorization: null, client: "192.0.2.3" });
  expect(await none.json()).toEqual({ details: "authentication required" });
});

test("failed logins from one address are throttled: the next attempt is a 429 even with the right password", async () => {
  for (let i = 0; i < 3; i++) await login.exchange({ query: query(""), authorization: basic("bob", "guess"), client: "198.51.100.9" });
  await expect(login.exchange({ query: query(""), authorization: basic("bob", "guess"), client: "198.51.100.9" })).rejects.toMatchObject({ status: 429 });
});

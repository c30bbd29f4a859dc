/** CredentialMemory in process: whose a token is, offline tokens naming credentials, and what a proof then allows. */
import { expect, test } from "bun:test";
import { CredentialMemory, OFFLINE_TOKEN } from "../../src/auth/credential-memory";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const bearer = (token: string) => `Bearer ${token}`;

test("the same credentials are the same key whether sent as Basic or as the password grant; others differ; anonymous has none", () => {
  const memory = new CredentialMemory();
  const alice = memory.credentialsOf(basic("alice", "secret"));
  expect(alice).toBeString();
  expect(memory.credentialsOf(null, new URLSearchParams({ grant_type: "password", username: "alice", password: "secret" }))).toBe(alice!);
  expect(memory.credentialsOf(basic("alice", "wrong"))).not.toBe(alice!);
  expect(memory.credentialsOf(null)).toBeUndefined();
  expect(memory.credentialsOf("Bearer something")).toBeUndefined();
});

test("a proof made with a relayed token counts for an offline token of the same credentials, for that repository only", () => {
  const memory = new CredentialMemory();
  const alice = memory.credentialsOf(basic("alice", "secret"))!;
  memory.issued(alice, "upstream-token-1", 300);
  memory.proven(bearer("upstream-token-1"), "hub/private/secret");

  const offline = memory.offlineToken(alice);
  expect(offline.startsWith(`${OFFLINE_TOKEN}.`)).toBe(true);
  expect(memory.isOffline(bearer(offline))).toBe(true);
  expect(memory.isOffline(bearer("upstream-token-1"))).toBe(false);
  expect(memory.provenBefore(bearer(offline), "hub/private/secret")).toBe(true);
  expect(memory.provenBefore(bearer(offline), "hub/private/other")).toBe(false);

  const mallory = memory.offlineToken(memory.credentialsOf(basic("alice", "guess"))!);
  expect(memory.provenBefore(bearer(mallory), "hub/private/secret")).toBe(false);
  expect(memory.offlineToken(undefined)).toBe(OFFLINE_TOKEN);
  expect(memory.provenBefore(bearer(OFFLINE_TOKEN), "hub/private/secret")).toBe(false);
  expect(memory.provenBefore(bearer(`${OFFLINE_TOKEN}.forged-handle`), "hub/private/secret")).toBe(false);
  // The upstream's own token is not an offline one: it is asked upstream as usual.
  expect(memory.provenBefore(bearer("upstream-token-1"), "hub/private/secret")).toBe(false);
});

test("a token docxy did not relay, or no token, proves nothing for anyone", () => {
  const memory = new CredentialMemory();
  const alice = memory.credentialsOf(basic("alice", "secret"))!;
  memory.proven(bearer("a-token-from-elsewhere"), "hub/private/secret");
  memory.proven(null, "hub/private/secret");
  expect(memory.provenBefore(bearer(memory.offlineToken(alice)), "hub/private/secret")).toBe(false);
});

test("provenAny (keep_deleted): a later token of the same credentials counts, as does an offline one; other credentials and anonymous do not", () => {
  const memory = new CredentialMemory();
  const alice = memory.credentialsOf(basic("alice", "secret"))!;
  memory.issued(alice, "upstream-token-1", 300);
  memory.proven(bearer("upstream-token-1"), "hub/private/secret");
  memory.issued(alice, "upstream-token-2", 300); // the first one expired, alice logged in again
  expect(memory.provenAny(bearer("upstream-token-2"), "hub/private/secret")).toBe(true);
  expect(memory.provenAny(bearer("upstream-token-2"), "hub/private/other")).toBe(false);
  expect(memory.provenAny(bearer(memory.offlineToken(alice)), "hub/private/secret")).toBe(true);
  const bob = memory.credentialsOf(basic("bob", "secret"))!;
  memory.issued(bob, "upstream-token-3", 300);
  expect(memory.provenAny(bearer("upstream-token-3"), "hub/private/secret")).toBe(false);
  expect(memory.provenAny(bearer("a-token-from-elsewhere"), "hub/private/secret")).toBe(false);
  expect(memory.provenAny(null, "hub/private/secret")).toBe(false);
});

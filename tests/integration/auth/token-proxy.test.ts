/**
 * The token endpoints against the real token server: what reaches it
 * (checked in its request log) and what comes back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { basic, json, startProxiedUpstream, type ProxiedUpstream } from "../../support/proxied-upstream";

let env: ProxiedUpstream;
beforeAll(async () => {
  env = await startProxiedUpstream();
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const lastTokenRequest = () => env.upstream.tokenLog.at(-1)!;

test("GET: configured service first, client's service dropped, order and repeated scopes kept, library/ added", async () => {
  const query = "scope=repository:alpine:pull&service=evil&scope=repository:acme/app:pull&client_id=containerd";
  const response = await fetch(`${env.docxy.url}/auth/token?${query}`);
  expect(response.status).toBe(200);
  const body = await json(response);
  expect(typeof body.token).toBe("string");
  expect(lastTokenRequest()).toMatchObject({
    method: "GET",
    authorization: false,
    query: [
      ["service", "test-registry"],
      ["scope", "repository:library/alpine:pull"],
      ["scope", "repository:acme/app:pull"],
      ["client_id", "containerd"],
    ],
  });
});

test("GET with Basic credentials (docker login): forwarded verbatim, refresh token when offline_token=true", async () => {
  const response = await fetch(`${env.docxy.url}/auth/dockerhub/token?account=alice&client_id=docker&offline_token=true&service=test-registry`, {
    headers: { authorization: basic("alice", "secret") },
  });
  expect(response.status).toBe(200);
  expect(typeof (await json(response)).refresh_token).toBe("string");
  expect(lastTokenRequest()).toMatchObject({ authScheme: "Basic", user: "alice" });
});

test("a wrong password is the token service's 401, relayed", async () => {
  const response = await fetch(`${env.docxy.url}/auth/dockerhub/token?account=alice`, { headers: { authorization: basic("alice", "nope") } });
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBeNull();
});

test("POST password grant (containerd with credentials), then the refresh grant (Docker with an identity token)", async () => {
  const form = new URLSearchParams({
    grant_type: "password",
    username: "alice",
    password: "secret",
    client_id: "containerd-client",
    scope: "repository:private/secret:pull repository:alpine:pull",
    service: "evil",
    access_type: "offline",
  });
  const response = await fetch(`${env.docxy.url}/auth/dockerhub/token`, { method: "POST", body: form });
  expect(response.status).toBe(200);
  const { access_token, refresh_token } = await json(response);
  expect(typeof access_token).toBe("string");
  expect(lastTokenRequest().method).toBe("POST");
  expect(lastTokenRequest().form).toEqual([
    ["service", "test-registry"],
    ["grant_type", "password"],
    ["username", "alice"],
    ["password", "***"],
    ["client_id", "containerd-client"],
    ["scope", "repository:private/secret:pull repository:library/alpine:pull"],
    ["access_type", "offline"],
  ]);

  const refreshed = await fetch(`${env.docxy.url}/auth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token, client_id: "docker", scope: "repository:private/secret:pull" }),
  });
  expect(refreshed.status).toBe(200);
  const token = (await json(refreshed)).access_token;
  const manifest = await fetch(`${env.docxy.url}/v2/private/secret/manifests/latest`, {
    headers: { authorization: `Bearer ${token}`, accept: env.upstream.images.secret.mediaType },
  });
  expect(manifest.status).toBe(200);
});

test("a POST that is not a form, or names an unknown upstream, is a registry-JSON error", async () => {
  const notForm = await fetch(`${env.docxy.url}/auth/token`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
  expect(notForm.status).toBe(400);
  expect((await json(notForm)).errors[0].code).toBe("BAD_REQUEST");
  const unknown = await fetch(`${env.docxy.url}/auth/nope/token`);
  expect(unknown.status).toBe(404);
  expect((await json(unknown)).errors[0].message).toContain("nope");
});

/**
 * docxy's own users (`[auth] enabled`), through the binary, in front of the
 * real upstream: the login flows clients use, the tokens docxy issues, and
 * what a request without one gets.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { htpasswdLine } from "../../support/htpasswd";
import { basic, json, sha256 } from "../../support/proxied-upstream";
import { skopeo, skopeoOk } from "../../support/skopeo";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const CI_TOKEN = "ci-token-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "docxy-users-"));
const htpasswd = join(dir, "htpasswd");
let upstream: Upstream;
let docxy: Docxy;
let host: string;

beforeAll(async () => {
  writeFileSync(htpasswd, await htpasswdLine("carol", "carol-pw"));
  upstream = await startUpstream({ onlyThroughProxy: true });
  docxy = await startDocxy({
    config: `${registryToml(upstream)}[auth]
enabled = true
htpasswd = "${htpasswd}"
tokens = ["ci:${CI_TOKEN}"]
`,
  });
  host = new URL(docxy.url).host;
}, 60_000);
afterAll(async () => {
  await docxy?.stop();
  await upstream?.stop();
});

async function login(user: string, password: string, scope = "repository:acme/app:pull"): Promise<Response> {
  return fetch(`${docxy.url}/auth/token?service=docxy&scope=${encodeURIComponent(scope)}&offline_token=true`, { headers: { authorization: basic(user, password) } });
}

test("without a docxy token every registry request is a 401 sending the client to docxy's token endpoint", async () => {
  const ping = await fetch(`${docxy.url}/v2/`);
  expect(ping.status).toBe(401);
  expect(ping.headers.get("www-authenticate")).toBe(`Bearer realm="${docxy.url}/auth/token",service="docxy"`);
  const manifest = await fetch(`${docxy.url}/v2/acme/app/manifests/v1`);
  expect(manifest.status).toBe(401);
  expect(manifest.headers.get("www-authenticate")).toContain('scope="repository:acme/app:pull"');
  expect((await json(manifest)).errors[0].code).toBe("UNAUTHORIZED");
});

test("a listed user logs in and pulls; the upstream never sees docxy's token", async () => {
  const bad = await login("carol", "wrong");
  expect(bad.status).toBe(401);
  const good = await login("carol", "carol-pw");
  expect(good.status).toBe(200);
  const { token, refresh_token } = await json(good);
  expect(typeof refresh_token).toBe("string");
  expect((await fetch(`${docxy.url}/v2/`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  upstream.tokenLog.length = 0;
  const manifest = await fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { headers: { authorization: `Bearer ${token}`, accept: upstream.images.app.mediaType } });
  expect(manifest.status).toBe(200);
  expect(sha256(await manifest.arrayBuffer())).toBe(upstream.images.app.digest);
  // docxy pulled anonymously as itself: the upstream token service saw no user and not carol's token
  expect(upstream.tokenLog.every((r) => r.user === undefined)).toBe(true);
});

test("a token grants only the repositories it was issued for", async () => {
  const { token } = await json(await login("carol", "carol-pw", "repository:acme/app:pull"));
  const other = await fetch(`${docxy.url}/v2/library/alpine/manifests/latest`, { headers: { authorization: `Bearer ${token}` } });
  expect(other.status).toBe(401);
  expect(other.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
  const forged = await fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
  expect(forged.status).toBe(401);
  expect(forged.headers.get("www-authenticate")).toContain('error="invalid_token"');
});

test("OAuth POST: password grant (containerd), then refresh grant (Docker's identity token)", async () => {
  const password = await fetch(`${docxy.url}/auth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "password", username: "carol", password: "carol-pw", client_id: "containerd-client", scope: "repository:acme/app:pull", access_type: "offline" }),
  });
  expect(password.status).toBe(200);
  const { refresh_token } = await json(password);
  const refreshed = await fetch(`${docxy.url}/auth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token, client_id: "docker", scope: "repository:acme/app:pull" }),
  });
  expect(refreshed.status).toBe(200);
  const { access_token } = await json(refreshed);
  expect((await fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { headers: { authorization: `Bearer ${access_token}`, accept: upstream.images.app.mediaType } })).status).toBe(200);
});

test("a static token works as a bearer token and as a login password (CI)", async () => {
  expect((await fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { headers: { authorization: `Bearer ${CI_TOKEN}`, accept: upstream.images.app.mediaType } })).status).toBe(200);
  expect((await login("ci", CI_TOKEN)).status).toBe(200);
});

test("skopeo with a listed user's credentials pulls; without them it cannot", async () => {
  const refused = await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${host}/acme/app:v1`);
  expect(refused.code).not.toBe(0);
  const raw = await skopeoOk("inspect", "--raw", "--tls-verify=false", "--creds", "carol:carol-pw", `docker://${host}/acme/app:v1`);
  expect(sha256(new TextEncoder().encode(raw))).toBe(upstream.images.app.digest);
});

test("a user added to the htpasswd file can log in without a restart", async () => {
  appendFileSync(htpasswd, await htpasswdLine("dave", "dave-pw"));
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    status = (await login("dave", "dave-pw")).status;
    if (status !== 200) await Bun.sleep(50);
  }
  expect(status).toBe(200);
});

test("no password or token reaches the log, and the access log names the user", () => {
  const log = docxy.log();
  for (const secret of ["carol-pw", "dave-pw", CI_TOKEN, Buffer.from("carol:carol-pw").toString("base64")]) expect(log).not.toContain(secret);
  expect(log).toMatch(/"user":"carol"/);
});

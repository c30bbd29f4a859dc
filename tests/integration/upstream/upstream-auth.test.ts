/**
 * docxy pulling with its own upstream account for clients that bring no
 * credentials, against the real registry and token server: the token server's
 * log shows who asked.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { basic, json, sha256 } from "../../support/proxied-upstream";
import { skopeoOk } from "../../support/skopeo";
import { startUpstream, upstreamEntryToml, type Upstream } from "../../support/upstream";

let upstream: Upstream;
let docxy: Docxy;
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true, users: { alice: "secret", hubbot: "bot-token" } });
  docxy = await startDocxy({
    env: { HUB_TOKEN: "bot-token" },
    config: upstreamEntryToml(upstream, "dockerhub", `credentials = [{ username = "hubbot", password_env = "HUB_TOKEN" }]\n`),
  });
}, 60_000);
afterAll(async () => {
  await docxy?.stop();
  await upstream?.stop();
});

const tokenRequests = () => upstream.tokenLog.filter((r) => r.path === "/token");

test("an anonymous client is not challenged: docxy pulls for it", async () => {
  const ping = await fetch(`${docxy.url}/v2/`);
  expect(ping.status).toBe(200);
  expect(ping.headers.get("www-authenticate")).toBeNull();
});

test("an anonymous client pulls a private image with the server-side account, whose token is cached", async () => {
  upstream.tokenLog.length = 0;
  const raw = await skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://${new URL(docxy.url).host}/private/secret:latest`);
  expect(sha256(new TextEncoder().encode(raw))).toBe(upstream.images.secret.digest);
  const asked = tokenRequests();
  expect(asked.length).toBeGreaterThan(0);
  expect(asked.every((r) => r.user === "hubbot")).toBe(true);
  expect(asked[0]!.query).toContainEqual(["scope", "repository:private/secret:pull"]);
  const before = tokenRequests().length;
  await skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://${new URL(docxy.url).host}/private/secret:latest`);
  expect(tokenRequests().length).toBe(before); // the same scope: served from docxy's token cache
});

test("a client with credentials of its own still uses them", async () => {
  upstream.tokenLog.length = 0;
  const response = await fetch(`${docxy.url}/auth/dockerhub/token?scope=repository:acme/app:pull`, { headers: { authorization: basic("alice", "secret") } });
  const { token } = await json(response);
  const manifest = await fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { headers: { authorization: `Bearer ${token}`, accept: upstream.images.app.mediaType } });
  expect(manifest.status).toBe(200);
  // alice's own login got the token; docxy may also ask as itself, in the background, to learn
  // whether the repository is one it may serve from its cache to anyone
  const users = tokenRequests().map((r) => r.user);
  expect(users).toContain("alice");
  expect(users.every((u) => u === "alice" || u === "hubbot")).toBe(true);
});

test("the account's secret never reaches the log", () => {
  expect(docxy.log()).not.toContain("bot-token");
  expect(docxy.log()).not.toContain(Buffer.from("hubbot:bot-token").toString("base64"));
});

test("a credential without its secret is a configuration error naming the key", async () => {
  const child = Bun.spawn([(await import("../../support/docxy-process")).DOCXY_BIN, "--http-port", "0"], {
    env: { DOCXY_REGISTRY_UPSTREAMS: JSON.stringify([{ name: "dockerhub", credentials: [{ username: "x", password_env: "NOT_SET_ANYWHERE" }] }]) },
    stderr: "pipe",
  });
  expect(await child.exited).toBe(2);
  const stderr = await new Response(child.stderr).text();
  expect(stderr).toContain("registry.upstreams[0].credentials[0].password_env: NOT_SET_ANYWHERE is not set");
});

/**
 * The token endpoint's caps, in process: the real TokenProxy and client
 * against a raw-TCP fake token service that answers with chunked bodies of
 * any size. What reaches the real token server is in tests/integration/auth/token-proxy.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { TokenProxy } from "../../src/auth/token-proxy";
import { CredentialMemory } from "../../src/auth/credential-memory";
import { AuthDiscovery } from "../../src/upstream/auth-discovery";
import { UpstreamClient } from "../../src/upstream/client";
import type { Upstream } from "../../src/upstream/table";
import { sendChunked, startFakeRegistry, type FakeRegistry } from "../support/cache/fake-registry";

const MiB = 1024 * 1024;
const TOKEN = JSON.stringify({ token: "t".repeat(3000), expires_in: 300 });
let fake: FakeRegistry;
beforeAll(async () => {
  fake = await startFakeRegistry((request, reply) => {
    const path = new URL(request.path, "http://x").pathname;
    if (path === "/huge-token") return void sendChunked(reply, 200, { "content-type": "application/json" }, 2 * MiB);
    if (path === "/chunked-token") return void sendChunked(reply, 200, { "content-type": "application/json" }, new TextEncoder().encode(TOKEN));
    if (path === "/huge-refusal") return void sendChunked(reply, 401, { "content-type": "application/json" }, 128 * 1024);
    reply.send(404);
  });
});
afterAll(() => fake?.stop());

const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 3 }, "docxy/test");
const tokens = new TokenProxy(client, new AuthDiscovery(client, 5000), new CredentialMemory());
const exchange = (realm: string) => {
  const upstream: Upstream = { name: "fake", registry: "fake.io", url: fake.url, hosts: [], autoLibraryPrefix: false, authRealm: `${fake.url}${realm}`, authService: "fake" };
  return tokens.exchange({ upstream, query: new URLSearchParams("scope=repository:acme/app:pull"), authorization: null });
};

test("a chunked token response within 1 MiB is relayed whole, with its length", async () => {
  const response = await exchange("/chunked-token");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-length")).toBe(String(TOKEN.length));
  expect(await response.text()).toBe(TOKEN);
});

test("a chunked token response over 1 MiB is not relayed: the service counts as failed (offline token)", async () => {
  const response = await exchange("/huge-token");
  const body = await response.text();
  expect(body.length).toBeLessThan(1024);
  expect(JSON.parse(body).token).toBe("docxy-offline");
});

test("a refusal with a body over 64 KiB stays a refusal: 401 with our registry JSON", async () => {
  const response = await exchange("/huge-refusal");
  expect(response.status).toBe(401);
  const body = await response.text();
  expect(body).toBe('{"errors":[{"code":"UNAUTHORIZED","message":"the token service of fake answered 401","detail":null}]}');
  expect(response.headers.get("content-length")).toBe(String(body.length));
  expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
});

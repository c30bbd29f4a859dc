/**
 * The token endpoint under upstream trouble, in process: the real TokenProxy
 * and client against the raw-TCP fake token service behind the fault switch
 * (tests/support/trouble.ts). A token service that cannot answer — for any
 * reason, a 429 storm included — gets clients docxy's offline token, so they
 * go on to ask for what the cache holds; a real refusal stays a refusal, so
 * `docker login` with a wrong password still fails.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { TokenProxy } from "../../src/auth/token-proxy";
import { CredentialMemory } from "../../src/auth/credential-memory";
import { AuthDiscovery } from "../../src/upstream/auth-discovery";
import { UpstreamClient } from "../../src/upstream/client";
import type { Upstream } from "../../src/upstream/table";
import { troubledFakeRegistry, type TroubleMode } from "../support/trouble";

const faulty = troubledFakeRegistry((request, reply) => {
  const path = new URL(request.path, "http://x").pathname;
  if (path === "/refuse-401") return reply.send(401, { "content-type": "application/json" }, '{"details":"incorrect username or password"}');
  if (path === "/refuse-403") return reply.send(403, { "content-type": "application/json" }, '{"details":"denied"}');
  reply.send(404);
});

const client = new UpstreamClient({ headerMs: 300, idleMs: 10_000, maxRedirects: 3 }, "docxy/test");
const tokens = new TokenProxy(client, new AuthDiscovery(client, 300), new CredentialMemory());

async function exchange(realm: string, post = false) {
  const upstream: Upstream = { name: "fake", registry: "fake.io", url: faulty.trouble.url, hosts: [], autoLibraryPrefix: false, authRealm: `${faulty.trouble.url}${realm}`, authService: "fake" };
  const scope = "repository:acme/app:pull";
  const response = await tokens.exchange({
    upstream,
    query: new URLSearchParams(post ? "" : `scope=${scope}`),
    form: post ? new URLSearchParams({ grant_type: "password", username: "alice", password: "secret", scope }) : undefined,
    authorization: post ? null : "Basic YWxpY2U6c2VjcmV0",
  });
  return { status: response.status, body: await response.text() };
}

const TROUBLE: [string, TroubleMode][] = [
  ["answering 429", { kind: "status", status: 429, retryAfter: "60" }],
  ["answering 500", { kind: "status", status: 500 }],
  ["answering 502", { kind: "status", status: 502 }],
  ["answering 503", { kind: "status", status: 503 }],
  ["answering 504", { kind: "status", status: 504 }],
  ["hanging past the timeout", { kind: "hang" }],
  ["closing the connection", { kind: "close" }],
  ["refusing connections", { kind: "refuse" }],
];

for (const [name, mode] of TROUBLE) {
  test(`token service ${name}: GET and POST get the offline token`, async () => {
    await faulty.trouble.set(mode);
    try {
      for (const post of [false, true]) {
        const { status, body } = await exchange("/token", post);
        expect({ post, status }).toEqual({ post, status: 200 });
        // An offline token naming alice's credentials (credential-memory.ts), the same in both fields.
        const { token, access_token } = JSON.parse(body);
        expect({ post, token }).toEqual({ post, token: expect.stringMatching(/^docxy-offline\.[A-Za-z0-9_-]+$/) });
        expect(access_token).toBe(token);
      }
    } finally {
      await faulty.trouble.set({ kind: "pass" });
    }
  });
}

test("the token service's refusals are relayed, never replaced by the offline token", async () => {
  for (const status of [401, 403]) {
    const got = await exchange(`/refuse-${status}`);
    expect(got.status).toBe(status);
    expect(got.body).not.toContain("docxy-offline");
  }
});

/**
 * The version check under upstream trouble, in process: the real Ping,
 * client and discovery against the raw-TCP fake registry behind the fault
 * switch (tests/support/trouble.ts). Clients stop at a failed `/v2/`, so
 * whatever the upstream does, docxy answers what it knows: the challenge
 * with its own realm to anonymous clients, 200 to clients with credentials.
 * The same against the real registry and real clients is in
 * tests/e2e/upstream-trouble.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Ping } from "../../src/proxy/ping";
import { AuthDiscovery } from "../../src/upstream/auth-discovery";
import { UpstreamClient } from "../../src/upstream/client";
import type { Upstream } from "../../src/upstream/table";
import { troubledFakeRegistry, type TroubleMode } from "../support/trouble";

const faulty = troubledFakeRegistry();

const PING_MS = 300;
const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 3 }, "docxy/test");
const ping = new Ping(client, new AuthDiscovery(client, PING_MS), PING_MS);

async function versionCheck(method: "GET" | "HEAD", authorization: string | null) {
  const upstream: Upstream = { name: "fake", registry: "fake.io", url: faulty.trouble.url, hosts: [], autoLibraryPrefix: false, authRealm: `${faulty.fake.url}/token`, authService: "fake" };
  const response = await ping.ping({ method, authorization, pullsAsProxy: false, upstream, origin: "http://docxy.test" });
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate"),
    version: response.headers.get("docker-distribution-api-version"),
    body: await response.text(),
  };
}

const MODES: [string, TroubleMode][] = [
  ["passing", { kind: "pass" }],
  ["answering 429", { kind: "status", status: 429, retryAfter: "30" }],
  ["answering 500", { kind: "status", status: 500 }],
  ["answering 502", { kind: "status", status: 502 }],
  ["answering 503", { kind: "status", status: 503 }],
  ["answering 504", { kind: "status", status: 504 }],
  ["answering an unexpected 403", { kind: "status", status: 403 }],
  ["hanging past the ping budget", { kind: "hang" }],
  ["closing the connection", { kind: "close" }],
  ["refusing connections", { kind: "refuse" }],
];

for (const [name, mode] of MODES) {
  test(`upstream ${name}: anonymous clients get docxy's challenge, clients with credentials 200`, async () => {
    await faulty.trouble.set(mode);
    const faultsBefore = faulty.trouble.faulted.length;
    for (const method of ["GET", "HEAD"] as const) {
      const anonymous = await versionCheck(method, null);
      expect({ method, status: anonymous.status, version: anonymous.version }).toEqual({ method, status: 401, version: "registry/2.0" });
      expect(anonymous.challenge).toBe('Bearer realm="http://docxy.test/auth/fake/token",service="fake"');
      if (method === "GET") expect(JSON.parse(anonymous.body).errors[0].code).toBe("UNAUTHORIZED");

      const withCredentials = await versionCheck(method, "Bearer some-token");
      expect({ method, status: withCredentials.status, body: withCredentials.body }).toEqual({ method, status: 200, body: method === "GET" ? "{}" : "" });
    }
    // The upstream really was asked, and really misbehaved (refused connections leave no line).
    if (mode.kind !== "pass" && mode.kind !== "refuse") expect(faulty.trouble.faulted.length).toBeGreaterThan(faultsBefore);
    await faulty.trouble.set({ kind: "pass" });
  });
}

/**
 * docxy under hostile input, through the binary in front of the real upstream:
 * realm and redirect injection (CVE-2025-63761), spoofed client addresses,
 * traversal and encodings in names and digests, junk credentials, invalid
 * UTF-8, a seeded random-request fuzz loop against the guards, and no
 * credential ever in a log. Random runs print their seed; DOCXY_FUZZ_SEED=<n>
 * replays one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { selfSignedCert } from "../../support/certs";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { fuzzRequest, pool, prng, registryCode, reply, send, tokenIn, type Outcome, type RawSpec, type Reply } from "../../support/fuzz";
import { htpasswdLine } from "../../support/htpasswd";
import { basic, sha256 } from "../../support/proxied-upstream";
import { freePort, startUpstream, type Upstream } from "../../support/upstream";

const SEED = Number(process.env.DOCXY_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PASSWORD = "carol-Pw-7f3a9c41";
const WRONG_PASSWORD = "carol-wrong-Pw-0d82e7";
const STATIC_TOKEN = "ci-static-token-5b2e8d41aa93";
const UPSTREAM_PASSWORD = "alice-Upstream-pw-91c4";
const PUBLIC = "https://registry.example.org";
const b64 = (text: string) => Buffer.from(text).toString("base64");
/** Everything that must never reach a log; issued tokens are added as the flows get them. */
const secrets = new Set([PASSWORD, WRONG_PASSWORD, STATIC_TOKEN, UPSTREAM_PASSWORD, b64(`carol:${PASSWORD}`), b64(`carol:${WRONG_PASSWORD}`), b64(`ci:${STATIC_TOKEN}`), b64(`alice:${UPSTREAM_PASSWORD}`)]);
const keepToken = (token: unknown) => {
  if (typeof token !== "string" || token.length < 16) return;
  secrets.add(token);
  if (token.split(".").length === 3) secrets.add(token.slice(token.lastIndexOf(".") + 1));
};

/** This machine's first non-loopback address: the realm host docxy falls back to for a foreign Host. */
const FALLBACK = (() => {
  const address = Object.values(networkInterfaces()).flat().map((i) => i!.address.toLowerCase()).find((a) => !a.startsWith("127.") && a !== "::1" && !a.startsWith("fe80"));
  return address === undefined ? "localhost" : address.includes(":") ? `[${address}]` : address;
})();

let upstream: Upstream;
const started: Docxy[] = [];
const dir = mkdtempSync(join(tmpdir(), "docxy-security-"));
const htpasswd = join(dir, "htpasswd");
let plain: Docxy; // no public_base_url, plain HTTP, debug logging
let based: Docxy; // public_base_url set
let guarded: Docxy; // [policy] deny docker.io/acme/*, [access] deny 198.51.100.0/24, a dead second upstream
let walled: Docxy; // [access] deny 127.0.0.0/8: every client of the tests
let authed: Docxy; // [auth] enabled

const upstreamKeys = () => `upstream_registry = "${upstream.registryUrl}"\nauth_realm = "${upstream.realm}"\nauth_service = "${upstream.service}"\n`;
const legacy = () => `[registry]\n${upstreamKeys()}`;
/** Docker Hub (also by Host hub.docxy.test) and a ghcr.io whose upstream is down (also by Host ghcr.docxy.test). */
const twoUpstreams = () => `[registry]\nbuiltin_upstreams = false
[[registry.upstreams]]\nname = "dockerhub"\nregistry = "docker.io"\n${upstreamKeys()}auto_library_prefix = true\nhosts = ["hub.docxy.test"]
[[registry.upstreams]]\nname = "ghcr"\nregistry = "ghcr.io"\nupstream_registry = "http://127.0.0.1:1"\nhosts = ["ghcr.docxy.test"]\n`;

async function docxyWith(config: string): Promise<Docxy> {
  const docxy = await startDocxy({ config, env: { DOCXY_UPSTREAM_PING_TIMEOUT: "2" } });
  started.push(docxy);
  return docxy;
}

beforeAll(async () => {
  console.log(`security fuzz seed: ${SEED} (replay with DOCXY_FUZZ_SEED=${SEED})`);
  upstream = await startUpstream({ onlyThroughProxy: true, users: { alice: UPSTREAM_PASSWORD } });
  writeFileSync(htpasswd, await htpasswdLine("carol", PASSWORD));
  [plain, based, guarded, walled, authed] = await Promise.all([
    docxyWith(`${legacy()}[log]\nlevel = "debug"\n`),
    docxyWith(`[server]\npublic_base_url = "${PUBLIC}"\n${legacy()}`),
    docxyWith(`${twoUpstreams()}[policy]\ndeny = ["docker.io/acme/*"]\n[access]\ndeny = ["198.51.100.0/24"]\n`),
    docxyWith(`${twoUpstreams()}[access]\ndeny = ["127.0.0.0/8"]\n`),
    docxyWith(`${twoUpstreams()}[auth]\nenabled = true\nhtpasswd = "${htpasswd}"\ntokens = ["ci:${STATIC_TOKEN}"]\n[log]\nlevel = "debug"\n`),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all(started.map((d) => d.stop()));
  await upstream?.stop();
});

const get = (target: string, headers: [string, string][] = [], method = "GET"): RawSpec => ({ method, target, headers });
const hostOf = (docxy: Docxy) => new URL(docxy.url).host;
const alive = async (docxy: Docxy) => {
  expect(() => process.kill(docxy.pid, 0)).not.toThrow();
  expect(reply(await send(docxy.url, get("/generate_204", [["host", hostOf(docxy)]]))).status).toBe(204);
};
/** A hostile request may be refused with a 4xx registry error or by closing the connection; nothing else. */
function expectRefused(outcome: Outcome, label: string): void {
  expect(outcome, label).not.toBe("timeout");
  if (outcome === "closed" || outcome === "timeout") return;
  expect(outcome.status, label).toBeGreaterThanOrEqual(400);
  expect(outcome.status, label).toBeLessThan(500);
  expect(registryCode(outcome), `${label}: ${outcome.body.toString().slice(0, 200)}`).toBeDefined();
}
const realmOf = (r: Reply) => /realm="([^"]*)"/.exec(r.headers["www-authenticate"] ?? "")?.[1];

describe("Host and X-Forwarded-* never choose the realm or a redirect (CVE-2025-63761)", () => {
  /** [label, headers, whether the Host names this machine]; HOST stands for the listener's own 127.0.0.1:port. */
  const injections: [string, [string, string][], boolean][] = [
    ["foreign Host", [["host", "evil.test"]], false],
    ["foreign Host with port", [["host", "evil.test:443"]], false],
    ["userinfo trick", [["host", "127.0.0.1@evil.test"]], false],
    ["look-alike", [["host", "localhost.evil.test"]], false],
    ["quote in Host", [["host", 'evil.test",x="']], false],
    ["foreign first of two Hosts", [["host", "evil.test"], ["host", "localhost"]], false],
    ["X-Forwarded-*", [["host", "HOST"], ["x-forwarded-host", "evil.test"], ["x-forwarded-proto", "https"], ["x-forwarded-port", "443"]], true],
    ["Forwarded", [["host", "HOST"], ["forwarded", 'host=evil.test;proto=https;for="[::1]"']], true],
    ["other host headers", [["host", "HOST"], ["x-original-host", "evil.test"], ["x-host", "evil.test"], ["x-forwarded-server", "evil.test"]], true],
    ["foreign Host, local X-Forwarded-Host", [["host", "evil.test"], ["x-forwarded-host", "localhost"], ["x-forwarded-proto", "https"]], false],
  ];
  const withHost = (headers: [string, string][], host: string) => headers.map(([k, v]): [string, string] => [k, v === "HOST" ? host : v]);

  test.each([
    ["without public_base_url", () => plain, (own: boolean, d: Docxy) => (own ? `http://${hostOf(d)}` : `http://${FALLBACK}:${new URL(d.url).port}`)],
    ["with public_base_url", () => based, () => PUBLIC],
  ] as const)("%s: realms on /v2/ and on a manifest 401", async (_mode, docxy, expected) => {
    const d = docxy();
    for (const [label, headers, own] of injections) {
      for (const target of ["/v2/", "/v2/library/alpine/manifests/latest", "/v2/docker.io/library/alpine/manifests/latest", "/v2/library/alpine/manifests/latest?ns=docker.io"]) {
        const r = reply(await send(d.url, get(target, withHost(headers, hostOf(d)))));
        expect(r.status, `${label} ${target}`).toBe(401);
        expect(realmOf(r), `${label} ${target}`).toBe(`${expected(own, d)}/auth/dockerhub/token`);
      }
    }
  });

  test("without public_base_url every challenge, whose realm depends on Host, carries Cache-Control: no-store (README)", async () => {
    for (const target of ["/v2/", "/v2/library/alpine/manifests/latest", "/v2/library/alpine/blobs/sha256:" + "a".repeat(64), "/v2/library/alpine/tags/list"]) {
      const r = reply(await send(plain.url, get(target, [["host", "evil.test"]])));
      expect(r.status, target).toBe(401);
      expect(r.headers["cache-control"], target).toBe("no-store");
    }
  });

  describe("standalone HTTPS: the HTTP port's 301 and the HTTPS realm", () => {
    const paths = ["/v2/", "/v2/library/alpine/manifests/latest?ns=docker.io", "/auth/token?scope=repository%3Aacme%2Fapp%3Apull", "/health"];
    let withBase: Docxy;
    let without: Docxy;
    let httpsPort: number;
    const port = (d: Docxy, scheme: string) => d.listeners.find((l) => l.scheme === scheme)!.port;
    beforeAll(async () => {
      const certs = await selfSignedCert("ec");
      httpsPort = await freePort();
      const server = (port: number, extra: string) => `[server]\nhttp_enabled = true\nhttps_enabled = true\nhttps_port = ${port}\n${extra}\n${legacy()}[tls]\ncert_path = "${certs.cert}"\nkey_path = "${certs.key}"\n`;
      [withBase, without] = await Promise.all([docxyWith(server(0, `public_base_url = "${PUBLIC}"`)), docxyWith(server(httpsPort, ""))]);
    }, 30_000);

    test("with public_base_url every redirect and realm is public_base_url", async () => {
      const http = `http://127.0.0.1:${port(withBase, "http")}`;
      const https = `https://127.0.0.1:${port(withBase, "https")}`;
      for (const [label, headers] of injections) {
        for (const path of paths) {
          const r = reply(await send(http, get(path, withHost(headers, new URL(http).host))));
          expect(r.status, label).toBe(301);
          expect(r.headers.location, `${label} ${path}`).toBe(`${PUBLIC}${path}`);
        }
        expect(realmOf(reply(await send(https, get("/v2/", withHost(headers, new URL(https).host))))), label).toBe(`${PUBLIC}/auth/dockerhub/token`);
      }
    });

    test("without public_base_url a foreign Host is redirected to this machine's address, never to itself", async () => {
      const http = `http://127.0.0.1:${port(without, "http")}`;
      for (const [label, headers, own] of injections) {
        for (const path of paths) {
          const r = reply(await send(http, get(path, withHost(headers, new URL(http).host))));
          expect(r.status, label).toBe(301);
          expect(r.headers.location, `${label} ${path}`).not.toContain("evil");
          if (!own) expect(r.headers.location, `${label} ${path}`).toBe(`https://${FALLBACK}:${httpsPort}${path}`);
        }
        const realm = realmOf(reply(await send(`https://127.0.0.1:${httpsPort}`, get("/v2/", withHost(headers, `127.0.0.1:${httpsPort}`)))));
        expect(realm, label).toBe(`https://${own ? `127.0.0.1:${httpsPort}` : `${FALLBACK}:${httpsPort}`}/auth/dockerhub/token`);
      }
    });

    test("without public_base_url a Host naming this machine is redirected to the HTTPS listener's port", async () => {
      const http = `http://127.0.0.1:${port(without, "http")}`;
      for (const host of [new URL(http).host, "localhost", `localhost:${port(without, "http")}`]) {
        const r = reply(await send(http, get("/v2/", [["host", host]])));
        expect(r.status).toBe(301);
        expect(r.headers.location, `Host: ${host}`).toBe(`https://${host.replace(/:\d+$/, "")}:${httpsPort}/v2/`);
      }
    });
  });
});

test("a spoofed X-Forwarded-For, X-Real-IP or Forwarded from an untrusted peer is ignored", async () => {
  const allowSpoofed = await docxyWith(`${legacy()}[access]\nallow = ["198.51.100.0/24"]\n`);
  const spoofs: [string, string][] = [["x-forwarded-for", "198.51.100.7"], ["x-forwarded-for", "198.51.100.7, 198.51.100.8"], ["x-real-ip", "198.51.100.7"], ["forwarded", "for=198.51.100.7"], ["true-client-ip", "198.51.100.7"]];
  const clientsOf = (d: Docxy) => d.log().split("\n").filter((l) => l.includes('"query":"probe=')).map((l) => JSON.parse(l).client);
  for (const [i, spoof] of spoofs.entries()) {
    const kept = reply(await send(guarded.url, get(`/v2/?probe=${i}`, [["host", hostOf(guarded)], spoof]))); // 198.51.100.0/24 is denied there
    expect(kept.status, spoof.join(": ")).toBe(401);
    const refused = reply(await send(allowSpoofed.url, get(`/v2/?probe=${i}`, [["host", hostOf(allowSpoofed)], spoof]))); // only 198.51.100.0/24 is allowed there
    expect(refused.status, spoof.join(": ")).toBe(403);
    expect(registryCode(refused)).toBe("DENIED");
    expect(refused.body.toString()).not.toContain("198.51.100");
  }
  await Bun.sleep(100); // the access line is written when the exchange closes
  expect([...clientsOf(guarded), ...clientsOf(allowSpoofed)]).toEqual(Array(2 * spoofs.length).fill("127.0.0.1"));
});

describe("traversal, encodings and sizes in names, digests and heads", () => {
  const utf8 = (text: string) => Buffer.from(text, "utf8").toString("latin1"); // raw UTF-8 bytes on the wire
  const hex = "a".repeat(64);
  const targets = [
    "/v2/../../etc/passwd", "/v2/..%2f..%2fetc/passwd/manifests/latest", "/v2/%2e%2e/%2e%2e/etc/passwd", "/v2/library/%2e%2e/%2e%2e/%2e%2e/etc/passwd/manifests/latest",
    "/v2/acme%2fapp/manifests/v1", "/v2/acme%2Fapp/blobs/sha256:" + hex, "/v2/acme/app%00/manifests/v1", "/v2/acme/app/manifests/v1%00", "/v2/library/alpine%00.json/manifests/latest",
    "/v2/library\\..\\..\\etc/manifests/latest", "/v2//library/alpine/manifests/latest", "/v2/library//alpine/manifests/latest", "/v2/library/alpine/manifests//latest",
    utf8("/v2/library/alpïne/manifests/latest"), "/v2/library/alp%C3%AFne/manifests/latest", utf8("/v2/library/alpine/manifests/lätest"), "/v2/%EF%BC%8E%EF%BC%8E/etc/manifests/latest",
    "/v2/library/alpine/blobs/sha256:..%2f..%2f" + hex.slice(6), "/v2/library/alpine/blobs/sha256%3A" + hex, "/v2/library/alpine/blobs/SHA256:" + hex, "/v2/library/alpine/blobs/sha256:" + hex + "/../x",
    "/v2/library/alpine/referrers/sha256:" + hex.slice(1), "/v2/library/alpine/blobs/md5:%00", `/v2/${"a".repeat(256)}/manifests/latest`, `/v2/${"a/".repeat(130)}x/manifests/latest`,
    `/v2/library/alpine/manifests/${"t".repeat(129)}`, `/v2/library/alpine/tags/list?n=1&last=${"x".repeat(100 * 1024)}`, `/v2/library/alpine/manifests/latest?${"q=%ff&".repeat(20_000)}`,
    "/v2/library/alpine/tags/list?n=-1", "/v2/library/alpine/tags/list?n=1e308&last=%00",
  ];
  test.each(targets.map((t) => [t.length > 100 ? `${t.slice(0, 60)}… (${t.length} bytes)` : t, t]))("%s", async (_label, target) => {
    expectRefused(await send(guarded.url, get(target, [["host", hostOf(guarded)]])), target.slice(0, 120));
    await alive(guarded);
  });

  test("a denied image stays denied however its name is spelt", async () => {
    for (const target of ["/v2/library/alpine/../../acme/app/manifests/v1", "/v2/acme/./app/manifests/v1", "/v2/acme\\app/manifests/v1", "/v2/acme/x/%2e%2e/app/manifests/v1", "/v2/DOCKER.IO/acme/app/manifests/v1", "/v2/acme/app/manifests/v1?ns=DOCKER.IO&ns=ghcr.io"]) {
      const r = reply(await send(guarded.url, get(target, [["host", hostOf(guarded)]])));
      expect(r.status, target).toBe(403);
      expect(registryCode(r), target).toBe("DENIED");
    }
  });

  test("oversized and numerous headers: refused or dropped, and docxy keeps serving", async () => {
    const many = Array.from({ length: 2000 }, (_, i): [string, string] => [`x-h${i}`, "v"]);
    for (const headers of [[["x-big", "a".repeat(64 * 1024)]], [["authorization", `Bearer ${"a".repeat(70_000)}`]], many, many.slice(0, 150), [["accept", "x,".repeat(40_000)]]] as [string, string][][]) {
      expectRefused(await send(guarded.url, get("/v2/library/alpine/manifests/latest", [["host", hostOf(guarded)], ...headers])), `${headers.length} headers`);
      await alive(guarded);
    }
  });

  test("an oversized token form is refused without being buffered", async () => {
    const fresh = await docxyWith(legacy());
    const peak = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${fresh.pid}/status`, "utf8"))![1]) * 1024;
    const before = peak();
    for (const framing of [["content-length", String(128 * 2 ** 20)], ["transfer-encoding", "chunked"]] as [string, string][]) {
      const form: RawSpec = { method: "POST", target: "/auth/token", headers: [["host", hostOf(fresh)], ["content-type", "application/x-www-form-urlencoded"], framing], streamed: 128 * 2 ** 20 };
      expectRefused(await send(fresh.url, form, 60_000), framing[0]);
      await alive(fresh);
    }
    expect(peak() - before).toBeLessThan(64 * 2 ** 20); // the form limit is 64 KiB
  }, 60_000);
});

describe("malformed credentials are a 4xx, never a 5xx", () => {
  const junk = ["Bearer", "Bearer ", "Basic !!!", `Basic ${b64("carol")}`, "Basic ", `Basic ${b64(`carol:${WRONG_PASSWORD}`)}`, "x".repeat(10 * 1024), `Bearer ${"A".repeat(10 * 1024)}`,
    "Bearer \u00ff\u00fe\u00c3\u0028", `Basic ${b64("carol:\u00e9")}\u00ff`, "Bearer a.b.c", "Bearer ..", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJjYXJvbCIsImlzcyI6ImRvY3h5In0.", "Negotiate abc", "bearer\ttab"];
  const targets = ["/v2/", "/v2/acme/app/manifests/v1", "/v2/library/alpine/blobs/sha256:" + "b".repeat(64)];

  test.each([["without [auth]", () => plain], ["with [auth] enabled", () => authed]] as const)("%s", async (_label, docxy) => {
    const d = docxy();
    for (const authorization of junk) {
      for (const target of targets) {
        const r = reply(await send(d.url, get(target, [["host", hostOf(d)], ["authorization", authorization]])));
        expect([400, 401], `${authorization.slice(0, 40)} ${target}`).toContain(r.status);
        expect(registryCode(r), authorization.slice(0, 40)).toBe(r.status === 401 ? "UNAUTHORIZED" : "BAD_REQUEST");
      }
      const token = reply(await send(d.url, get("/auth/token?scope=repository%3Aacme%2Fapp%3Apull", [["host", hostOf(d)], ["authorization", authorization]])));
      expect(token.status, authorization.slice(0, 40)).toBeLessThan(500);
      if (d === authed) expect(token.status).toBe(401);
      if (token.status === 200) keepToken(tokenIn(token));
    }
    await alive(d);
  });

  test("forged, tampered, foreign and refresh tokens are invalid_token at docxy's own realm", async () => {
    const login = reply(await send(authed.url, get("/auth/token?scope=repository%3Aacme%2Fapp%3Apull&offline_token=true", [["host", hostOf(authed)], ["authorization", basic("carol", PASSWORD)]])));
    expect(login.status).toBe(200);
    const { token, refresh_token } = JSON.parse(login.body.toString());
    [token, refresh_token].forEach(keepToken);
    const [header, payload, signature] = token.split(".");
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), sub: "admin" })).toString("base64url");
    const upstreamToken = await upstream.token("acme/app");
    keepToken(upstreamToken);
    const none = Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url");
    for (const bad of [`${header}.${payload}.${signature.slice(0, -2)}${signature.endsWith("AA") ? "BB" : "AA"}`, `${header}.${forged}.${signature}`, `${none}.${payload}.`, `${none}.${payload}.${signature}`,
      `${Buffer.from('{"alg":"HS512","typ":"JWT"}').toString("base64url")}.${payload}.${signature}`, `${header}.${payload}`, `${header}.${payload}.${signature}.x`, refresh_token, upstreamToken]) {
      const r = reply(await send(authed.url, get("/v2/acme/app/manifests/v1", [["host", "evil.test"], ["authorization", `Bearer ${bad}`]])));
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toBe(`Bearer realm="http://${FALLBACK}:${new URL(authed.url).port}/auth/token",service="docxy",scope="repository:acme/app:pull",error="invalid_token"`);
    }
    const ok = reply(await send(authed.url, get("/v2/acme/app/manifests/v1", [["host", hostOf(authed)], ["authorization", `Bearer ${token}`], ["accept", upstream.images.app.mediaType]])));
    expect(ok.status).toBe(200);
  });
});

test("invalid UTF-8 in the path and the query: refused or dropped, never a crash", async () => {
  const bad = ["/v2/\xC3\x28/manifests/latest", "/v2/library/\xFF/manifests/latest", "/v2/library/alpine/manifests/latest?ns=\xFF", "/v2/library/alpine/tags/list?n=\xC3\x28&last=\xFF",
    "/v2/library/alpine/manifests/latest?ns=%FF", "/v2/library/alpine/tags/list?n=1&last=%C3%28", "/v2/%C3%28/manifests/latest", "/v2/library/alpine/manifests/%FF%FE", "/auth/token?scope=\xFF\xC3\x28"];
  for (const d of [plain, authed, guarded]) {
    for (const target of bad) expectRefused(await send(d.url, get(target, [["host", hostOf(d)]])), `${JSON.stringify(target)} on ${d.url}`);
    await alive(d);
  }
});

describe("random requests", () => {
  /** Runs `count` random requests against `d`; returns each request with what came back. */
  async function fuzz(d: Docxy, salt: number, count: number, authorizations: string[]) {
    const { images } = upstream;
    const alpine = images.alpine.manifests[0]!;
    const digests = [images.app.digest, images.alpine.digest, ...images.alpine.manifests.map((m) => m.digest), alpine.config.digest, ...alpine.layers.map((l) => l.digest),
      images.nginx.manifests[0]!.layers[0]!.digest, images.app.manifests[0]!.layers[0]!.digest, images.app.manifests[0]!.config.digest, images.secret.digest, "sha256:" + "0".repeat(64), "sha256:abc", "sha512:" + "f".repeat(128), "md5:x", "sha256:" + "A".repeat(64)];
    const rand = prng(SEED ^ salt);
    const hosts = [hostOf(d), "hub.docxy.test", "ghcr.docxy.test", "localhost"];
    const specs = Array.from({ length: count }, () => fuzzRequest(rand, { digests, hosts, authorizations }));
    const outcomes = await pool(count, 16, (i) => send(d.url, specs[i]!, 20_000));
    const histogram: Record<string, number> = {};
    for (const o of outcomes.map((o) => (typeof o === "string" ? o : o.status))) histogram[o] = (histogram[o] ?? 0) + 1;
    console.log(`fuzz ${d.url} seed ${SEED}^${salt}: ${JSON.stringify(histogram)}`);
    const failures: string[] = [];
    const relayed: string[] = [];
    specs.forEach((spec, i) => {
      const o = outcomes[i]!;
      const what = `${spec.method} ${spec.target.slice(0, 150)} ${JSON.stringify(spec.headers.map(([k, v]) => `${k}: ${v.slice(0, 40)}`))}`;
      if (o === "timeout") failures.push(`timeout: ${what}`);
      else if (o === "closed" || o.status < 500 || ([502, 503, 504].includes(o.status) && (spec.method === "HEAD" || registryCode(o) === "UNAVAILABLE"))) return;
      // The registry's own 500 relayed unchanged (see "an upstream's 500…" below) is counted, not failed, so that the seed does not decide.
      else if (o.status === 500 && (spec.method === "HEAD" ? /\/manifests\/sha256:/.test(spec.target) : o.body.includes('"unknown error"'))) relayed.push(what);
      else failures.push(`${o.status} ${o.body.toString().slice(0, 200)}: ${what}`);
    });
    if (relayed.length > 0) console.log(`${relayed.length} upstream 500(s) relayed as 500:\n${relayed.join("\n")}`);
    expect(failures).toEqual([]);
    expect(d.log()).not.toContain("unexpected error");
    // An app error the bridge could only answer by dropping the connection logs status 0 (our client never leaves early).
    await Bun.sleep(100);
    expect(d.log().split("\n").filter((l) => l.startsWith("{") && /"status":0,|"complete":false/.test(l))).toEqual([]);
    await alive(d);
    return specs.map((spec, i) => ({ spec, outcome: outcomes[i]!, path: /^(\/|https?:\/\/)/.test(spec.target) ? (URL.parse(spec.target, "http://x")?.pathname ?? "") : "/" })); // as the bridge routes it
  }

  test("an upstream's 500 (distribution answers one to a manifest GET by a layer's digest) reaches the client as 502 UNAVAILABLE", async () => {
    const token = tokenIn(reply(await send(plain.url, get("/auth/token?scope=repository%3Alibrary%2Falpine%3Apull", [["host", hostOf(plain)]]))));
    const layer = upstream.images.alpine.manifests[0]!.layers[0]!.digest;
    for (const method of ["GET", "HEAD"]) {
      const r = reply(await send(plain.url, get(`/v2/library/alpine/manifests/${layer}`, [["host", hostOf(plain)], ["authorization", `Bearer ${token}`]], method)));
      expect(r.status, method).toBe(502);
      if (method === "GET") expect(registryCode(r)).toBe("UNAVAILABLE");
    }
  });

  test("guarded: no 5xx but UNAVAILABLE from the dead upstream, and no byte of a denied image in any routing mode", async () => {
    const anonymous = tokenIn(reply(await send(guarded.url, get("/auth/token?scope=repository%3Alibrary%2Falpine%3Apull", [["host", hostOf(guarded)]]))));
    const foreign = await upstream.token("acme/app");
    keepToken(foreign);
    const results = await fuzz(guarded, 1, 1500, [`Bearer ${anonymous}`, basic("alice", UPSTREAM_PASSWORD), `Bearer ${foreign}`]);
    const app = upstream.images.app;
    const denied = new Set([app.digest, app.manifests[0]!.config.digest, ...app.manifests[0]!.layers.map((l) => l.digest)]);
    const leaks = results.filter(({ path, outcome: o }) => typeof o !== "string" && o.status < 300 && path.startsWith("/v2/") && (denied.has(o.headers["docker-content-digest"] ?? "") || denied.has(sha256(o.body)) || o.body.includes("acme/app")));
    expect(leaks.map((l) => `${l.spec.method} ${l.spec.target} ${JSON.stringify(l.spec.headers)}`)).toEqual([]);
    const served = guarded.log().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).filter((e) => e.registry === "docker.io" && /^(library\/)?acme\//.test(e.repository ?? "") && e.status < 400);
    expect(served).toEqual([]);
    const statuses = results.map((r) => (typeof r.outcome === "string" ? 0 : r.outcome.status));
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0); // the fuzz does reach real content
    expect(results.filter((r) => typeof r.outcome !== "string" && registryCode(r.outcome) === "DENIED").length).toBeGreaterThan(0);
    for (const r of results) if (typeof r.outcome !== "string" && r.outcome.status === 200 && r.path.startsWith("/auth/")) keepToken(tokenIn(r.outcome));
  }, 60_000);

  test("walled (127.0.0.0/8 denied): nothing on /v2/ or /auth/ gets past the guard in any routing mode", async () => {
    const results = await fuzz(walled, 2, 500, [basic("alice", UPSTREAM_PASSWORD)]);
    const through = results.filter(({ path, outcome: o }) => /^\/(v2|auth)\//.test(path) && typeof o !== "string" && (o.status < 400 || o.status === 401));
    expect(through.map((t) => `${t.spec.method} ${t.spec.target} → ${typeof t.outcome === "string" ? t.outcome : t.outcome.status}`)).toEqual([]);
    expect(results.filter((r) => typeof r.outcome !== "string" && registryCode(r.outcome) === "DENIED").length).toBeGreaterThan(50);
  }, 60_000);

  test("walled: the status page and /metrics are refused like the registry API; /health and /generate_204 stay open for balancers", async () => {
    for (const path of ["/", "/metrics"]) {
      const response = await fetch(`${walled.url}${path}`);
      expect(response.status).toBe(403);
      expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DENIED");
    }
    expect((await fetch(`${walled.url}/health`)).status).toBe(200);
    expect((await fetch(`${walled.url}/generate_204`)).status).toBe(204);
  });

  test("authed: no registry content without a token granting it", async () => {
    const login = JSON.parse(reply(await send(authed.url, get("/auth/token?scope=repository%3Aacme%2Fapp%3Apull&offline_token=true", [["host", hostOf(authed)], ["authorization", basic("carol", PASSWORD)]]))).body.toString());
    [login.token, login.refresh_token].forEach(keepToken);
    const grant = `Bearer ${login.token}`;
    const results = await fuzz(authed, 3, 1000, [grant, `Bearer ${login.refresh_token}`, basic("carol", PASSWORD), basic("ci", STATIC_TOKEN), `Bearer ${STATIC_TOKEN.slice(0, -1)}`]);
    const through = results.filter(({ spec, path, outcome: o }) => {
      if (typeof o === "string" || o.status >= 300 || !path.startsWith("/v2/")) return false;
      const granted = spec.headers.some(([k, v]) => k === "authorization" && v === grant);
      return !(granted && (path === "/v2/" || path.startsWith("/v2/acme/app/")));
    });
    expect(through.map((t) => `${t.spec.method} ${t.spec.target} ${JSON.stringify(t.spec.headers)}`)).toEqual([]);
    for (const r of results) if (typeof r.outcome !== "string" && r.outcome.status === 200 && r.path.startsWith("/auth/")) keepToken(tokenIn(r.outcome));
  }, 60_000);
});

test("no password, Basic credential or issued token ever reaches a log line", async () => {
  // Logins that succeed and fail, through the forwarding token endpoint and docxy's own.
  const upToken = tokenIn(reply(await send(plain.url, get("/auth/token?scope=repository%3Aprivate%2Fsecret%3Apull", [["host", hostOf(plain)], ["authorization", basic("alice", UPSTREAM_PASSWORD)]]))));
  keepToken(upToken);
  expect(reply(await send(plain.url, get("/v2/private/secret/manifests/latest", [["host", hostOf(plain)], ["authorization", `Bearer ${upToken}`], ["accept", upstream.images.secret.mediaType]]))).status).toBe(200);
  const form = (d: Docxy, body: string): RawSpec => ({ method: "POST", target: "/auth/token", headers: [["host", hostOf(d)], ["content-type", "application/x-www-form-urlencoded"], ["content-length", String(body.length)]], body: Buffer.from(body) });
  for (const d of [plain, authed]) {
    const grant = reply(await send(d.url, form(d, `grant_type=password&username=${d === plain ? "alice" : "carol"}&password=${d === plain ? UPSTREAM_PASSWORD : PASSWORD}&client_id=x&scope=repository%3Aacme%2Fapp%3Apull&access_type=offline`)));
    expect(grant.status).toBe(200);
    const issued = JSON.parse(grant.body.toString());
    [issued.access_token, issued.token, issued.refresh_token].forEach(keepToken);
    expect(reply(await send(d.url, form(d, `grant_type=password&username=${d === plain ? "alice" : "carol"}&password=${WRONG_PASSWORD}&client_id=x&scope=repository%3Aacme%2Fapp%3Apull`))).status).toBe(401);
  }
  expect(reply(await send(authed.url, get("/auth/token", [["host", hostOf(authed)], ["authorization", basic("ci", STATIC_TOKEN)]]))).status).toBe(200);
  expect(reply(await send(authed.url, get("/v2/", [["host", hostOf(authed)], ["authorization", `Bearer ${STATIC_TOKEN}`]]))).status).toBe(200);
  await Bun.sleep(100); // the access line is written when the exchange closes
  expect(secrets.size).toBeGreaterThan(12);
  for (const d of started) {
    const log = d.log();
    for (const secret of secrets) expect(log.includes(secret), `a secret (${secret.slice(0, 6)}…) in the log of ${d.url}`).toBe(false);
  }
});

describe("password guessing on the token endpoint is throttled per address and per name", () => {
  let throttled: Docxy;
  beforeAll(async () => {
    // The tests' peer is a trusted proxy, so X-Forwarded-For plays the client addresses.
    throttled = await docxyWith(
      `${legacy()}[access]\ntrusted_proxies = ["127.0.0.0/8"]\n[auth]\nenabled = true\nhtpasswd = "${htpasswd}"\nfailed_logins_per_address = 3\nfailed_logins_per_user = 3\n`,
    );
  });
  const login = (client: string, name: string, password: string) =>
    fetch(`${throttled.url}/auth/token?scope=repository%3Aacme%2Fapp%3Apull`, { headers: { authorization: basic(name, password), "x-forwarded-for": client } });
  const refused = async (response: Response) => {
    expect(response.status).toBe(429);
    expect(Number(response.headers.get("retry-after"))).toBeWithin(1, 61);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("TOOMANYREQUESTS");
  };

  test("many names from one address: 429 with Retry-After after the limit, for GET Basic and POST password alike", async () => {
    expect((await login("198.51.100.10", "carol", PASSWORD)).status).toBe(200); // carol is mid-pull behind the guesser's NAT
    for (const name of ["mallory", "carol", "root"]) expect((await login("198.51.100.10", name, WRONG_PASSWORD)).status).toBe(401);
    await refused(await login("198.51.100.10", "admin", WRONG_PASSWORD));
    await refused(await login("198.51.100.10", "carol", "carol-other-guess"));
    const posted = await fetch(`${throttled.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": "198.51.100.10" },
      body: `grant_type=password&username=carol&password=${WRONG_PASSWORD}&service=docxy&scope=repository%3Aacme%2Fapp%3Apull`,
    });
    await refused(posted);
    // carol's credentials verified a moment ago: she goes on; another address is not affected.
    expect((await login("198.51.100.10", "carol", PASSWORD)).status).toBe(200);
    expect((await login("198.51.100.11", "someone", WRONG_PASSWORD)).status).toBe(401);
  });

  test("one name from many addresses: that name waits, others do not", async () => {
    for (const client of ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) expect((await login(client, "dave", WRONG_PASSWORD)).status).toBe(401);
    await refused(await login("203.0.113.4", "dave", WRONG_PASSWORD));
    expect((await login("203.0.113.4", "carol", PASSWORD)).status).toBe(200);
  });
});

/**
 * docxy (the binary) reaching its upstream through real proxies: tinyproxy (HTTP, BasicAuth) and
 * dante-server (SOCKS5, with and without a username), set per upstream or, for HTTP, through
 * HTTP_PROXY. The upstream is the real one (distribution with token auth and 307s to a CDN);
 * a TLS front on the registry makes the registry hops CONNECT tunnels while the token and CDN
 * hops stay plain http (absolute form).
 *
 * Proof that the proxy is the way out: the proxies connect out from 127.0.0.2 (docxy, on
 * 127.0.0.1, cannot), so every request the upstream sees must come from 127.0.0.2; the proxies'
 * logs name each hop; pulled blobs match their digests; and with the proxy stopped the same pull
 * is a 502 naming the proxy, never its credentials.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { selfSignedCert } from "../../support/certs";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { PROXY_EGRESS, type ProxyServer, SOCKS_ACCOUNT, startDante, startTinyproxy } from "../../support/outbound-proxies";
import { json, sha256 } from "../../support/proxied-upstream";
import { startUpstream, type Upstream } from "../../support/upstream";

const TINY = { user: "corp-user", password: "tiny-secret-9Zr" };
let upstream: Upstream;
let front: { url: string; peers: string[]; stop(): Promise<void> };
let caFile: string;
let tinyproxy: ProxyServer;
let dante: ProxyServer;
let openDante: ProxyServer;

beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  const cert = await selfSignedCert("ec");
  caFile = cert.cert;
  front = tlsFront(upstream.registryUrl, cert);
  [tinyproxy, dante, openDante] = await Promise.all([startTinyproxy(TINY), startDante(true), startDante(false)]);
}, 120_000);
afterAll(async () => {
  await Promise.all([tinyproxy?.stop(), dante?.stop(), openDante?.stop(), front?.stop()]);
  await upstream?.stop();
});

/** An https front on the registry (docker-registry here speaks plain http), recording who connected. */
function tlsFront(target: string, cert: { cert: string; key: string }) {
  const peers: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: Bun.file(cert.cert), key: Bun.file(cert.key) },
    async fetch(req, srv) {
      peers.push(srv.requestIP(req)?.address ?? "?");
      const url = new URL(req.url);
      const headers = new Headers(req.headers);
      headers.delete("host");
      const res = await fetch(`${target}${url.pathname}${url.search}`, { method: req.method, headers, redirect: "manual", decompress: false, proxy: false } as RequestInit);
      const out = new Headers(res.headers);
      out.delete("transfer-encoding");
      return new Response(res.body, { status: res.status, headers: out });
    },
  });
  return { url: `https://127.0.0.1:${server.port}`, peers, stop: () => server.stop(true) };
}

function config(registry: string, proxy?: string): string {
  return [
    "[cache]\nenabled = false", // every pull goes to the upstream
    "[[registry.upstreams]]",
    'name = "dockerhub"',
    `upstream_registry = "${registry}"`,
    `auth_realm = "${upstream.realm}"`,
    `auth_service = "${upstream.service}"`,
    ...(proxy ? [`proxy = "${proxy}"`] : []),
  ].join("\n");
}

async function docxyWith(registry: string, proxy?: string, env: Record<string, string> = {}): Promise<Docxy> {
  // The harness sets NO_PROXY=* (no test leaks to a proxy of the machine's); here it must be empty.
  return startDocxy({ config: config(registry, proxy), env: { NODE_EXTRA_CA_CERTS: caFile, NO_PROXY: "", ...env } });
}

/** A client's pull of acme/app:v1 through docxy: token, manifest, each layer; returns each blob's digest as received. */
async function pull(docxy: Docxy): Promise<{ status: number; body?: any; digests: string[] }> {
  const tokenResponse = await fetch(`${docxy.url}/auth/dockerhub/token?scope=repository:acme/app:pull`);
  if (tokenResponse.status !== 200) return { status: tokenResponse.status, body: await tokenResponse.json(), digests: [] };
  const authorization = `Bearer ${(await json(tokenResponse)).token}`;
  const image = upstream.images.app.manifests[0]!;
  const manifest = await fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { headers: { authorization, accept: image.mediaType } });
  if (manifest.status !== 200) return { status: manifest.status, body: await manifest.json(), digests: [] };
  const digests = [sha256(new Uint8Array(await manifest.arrayBuffer()))];
  for (const layer of image.layers) {
    const blob = await fetch(`${docxy.url}/v2/acme/app/blobs/${layer.digest}`, { headers: { authorization } });
    expect(blob.status).toBe(200);
    digests.push(sha256(new Uint8Array(await blob.arrayBuffer())));
  }
  return { status: 200, digests };
}

const expected = () => [upstream.images.app.manifests[0]!.digest, ...upstream.images.app.manifests[0]!.layers.map((l) => l.digest)];
const portOf = (url: string) => new URL(url).port;

/** The peers the token service and the CDN saw from record `from` on. */
function upstreamPeers(from: { token: number; cdn: number }): string[] {
  return [...upstream.tokenLog.slice(from.token), ...upstream.cdnLog.slice(from.cdn)].map((r) => r.peer ?? "?");
}
const mark = () => ({ token: upstream.tokenLog.length, cdn: upstream.cdnLog.length });

/** The registry's access-log lines from byte `from` on, by client address. */
function registryPeers(from: number): string[] {
  return readFileSync(upstream.registryLog, "utf8")
    .slice(from)
    .split("\n")
    .flatMap((line) => /^(\d+\.\d+\.\d+\.\d+) - - \[/.exec(line)?.[1] ?? []);
}
const registryMark = () => readFileSync(upstream.registryLog, "utf8").length;

function noSecrets(text: string): void {
  for (const secret of [TINY.password, SOCKS_ACCOUNT.password]) expect(text).not.toContain(secret);
}

describe("per upstream proxy", () => {
  test("tinyproxy with BasicAuth, plain http: every hop (token, registry, CDN) goes through it", async () => {
    const docxy = await docxyWith(upstream.registryUrl, tinyproxy.url);
    try {
      const before = { seen: tinyproxy.requests().length, logs: mark(), registry: registryMark() };
      const result = await pull(docxy);
      expect(result.digests).toEqual(expected());
      const hops = tinyproxy.requests().slice(before.seen);
      expect(hops.filter((h) => h.includes(`:${portOf(upstream.realm)}/token`)).length).toBeGreaterThanOrEqual(1);
      expect(hops.filter((h) => h.includes(`:${portOf(upstream.registryUrl)}/v2/`)).length).toBeGreaterThanOrEqual(1 + expected().length - 1);
      expect(hops.filter((h) => h.includes(`:${portOf(upstream.cdnUrl)}/`)).length).toBe(expected().length - 1);
      expect(new Set(upstreamPeers(before.logs))).toEqual(new Set([PROXY_EGRESS]));
      expect(docxy.log()).toContain(`msg=upstream name=dockerhub url=${upstream.registryUrl} default=true`);
      expect(docxy.log()).toContain(`proxy=http://127.0.0.1:${tinyproxy.port}`);
      const registry = registryPeers(before.registry);
      expect(registry.length).toBeGreaterThan(0);
      expect(new Set(registry)).toEqual(new Set([PROXY_EGRESS]));
      noSecrets(docxy.log());
    } finally {
      await docxy.stop();
    }
  }, 60_000);

  test("tinyproxy, https registry: CONNECT tunnels, TLS end to end", async () => {
    const docxy = await docxyWith(front.url, tinyproxy.url);
    try {
      const before = { seen: tinyproxy.requests().length, peers: front.peers.length, logs: mark() };
      expect((await pull(docxy)).digests).toEqual(expected());
      expect(tinyproxy.requests().slice(before.seen)).toContain(`CONNECT 127.0.0.1:${portOf(front.url)}`);
      expect(new Set(front.peers.slice(before.peers))).toEqual(new Set([PROXY_EGRESS]));
      expect(new Set(upstreamPeers(before.logs))).toEqual(new Set([PROXY_EGRESS]));
    } finally {
      await docxy.stop();
    }
  }, 60_000);

  test("SOCKS5 with a username (dante): plain http through docxy's bridge", async () => {
    const docxy = await docxyWith(upstream.registryUrl, dante.url);
    try {
      const before = { seen: dante.requests().length, logs: mark(), registry: registryMark() };
      expect((await pull(docxy)).digests).toEqual(expected());
      const tunnels = dante.requests().slice(before.seen);
      for (const url of [upstream.realm, upstream.registryUrl, upstream.cdnUrl]) expect(tunnels).toContain(`127.0.0.1:${portOf(url)}`);
      expect(new Set(upstreamPeers(before.logs))).toEqual(new Set([PROXY_EGRESS]));
      expect(new Set(registryPeers(before.registry))).toEqual(new Set([PROXY_EGRESS]));
      noSecrets(docxy.log());
    } finally {
      await docxy.stop();
    }
  }, 60_000);

  test("SOCKS5h without authentication (dante), https registry: CONNECT through the bridge", async () => {
    const docxy = await docxyWith(front.url, openDante.url.replace("socks5://", "socks5h://"));
    try {
      const before = { seen: openDante.requests().length, peers: front.peers.length };
      expect((await pull(docxy)).digests).toEqual(expected());
      expect(openDante.requests().slice(before.seen)).toContain(`127.0.0.1:${portOf(front.url)}`);
      expect(new Set(front.peers.slice(before.peers))).toEqual(new Set([PROXY_EGRESS]));
    } finally {
      await docxy.stop();
    }
  }, 60_000);
});

describe("environment", () => {
  test("HTTP_PROXY is honoured (by Bun's fetch) for every hop; NO_PROXY takes a host out", async () => {
    const proxied = await docxyWith(upstream.registryUrl, undefined, { HTTP_PROXY: tinyproxy.url, NO_PROXY: "" });
    try {
      const before = { seen: tinyproxy.requests().length, logs: mark() };
      expect((await pull(proxied)).digests).toEqual(expected());
      expect(tinyproxy.requests().length - before.seen).toBeGreaterThanOrEqual(expected().length * 2);
      expect(new Set(upstreamPeers(before.logs))).toEqual(new Set([PROXY_EGRESS]));
    } finally {
      await proxied.stop();
    }
    const bypassed = await docxyWith(upstream.registryUrl, undefined, { HTTP_PROXY: tinyproxy.url, NO_PROXY: "127.0.0.1" });
    try {
      const before = { seen: tinyproxy.requests().length, logs: mark() };
      expect((await pull(bypassed)).digests).toEqual(expected());
      expect(tinyproxy.requests().length).toBe(before.seen);
      expect(new Set(upstreamPeers(before.logs))).toEqual(new Set(["127.0.0.1"]));
    } finally {
      await bypassed.stop();
    }
  }, 60_000);

  test("SOCKS in ALL_PROXY, which Bun's fetch cannot speak, goes through docxy's bridge", async () => {
    const docxy = await docxyWith(upstream.registryUrl, undefined, { ALL_PROXY: dante.url });
    try {
      const before = { seen: dante.requests().length, logs: mark() };
      expect((await pull(docxy)).digests).toEqual(expected());
      expect(dante.requests().slice(before.seen)).toContain(`127.0.0.1:${portOf(upstream.cdnUrl)}`);
      expect(new Set(upstreamPeers(before.logs))).toEqual(new Set([PROXY_EGRESS]));
    } finally {
      await docxy.stop();
    }
  }, 60_000);

  test("a per-upstream proxy wins over HTTP_PROXY", async () => {
    const docxy = await docxyWith(upstream.registryUrl, openDante.url, { HTTP_PROXY: tinyproxy.url, NO_PROXY: "" });
    try {
      const before = { tiny: tinyproxy.requests().length, dante: openDante.requests().length };
      expect((await pull(docxy)).digests).toEqual(expected());
      expect(tinyproxy.requests().length).toBe(before.tiny);
      expect(openDante.requests().length).toBeGreaterThan(before.dante);
    } finally {
      await docxy.stop();
    }
  }, 60_000);
});

describe("failures name the proxy, never its credentials", () => {
  test("a stopped proxy: the pull that worked is a registry-JSON 502 naming the proxy; /health says so too", async () => {
    const tiny = await startTinyproxy(TINY);
    const socks = await startDante(true);
    const viaTiny = await docxyWith(upstream.registryUrl, tiny.url);
    const viaSocks = await docxyWith(front.url, socks.url);
    try {
      expect((await pull(viaTiny)).digests).toEqual(expected());
      expect((await pull(viaSocks)).digests).toEqual(expected());
      await Promise.all([tiny.stop(), socks.stop()]);

      const [a, b] = await Promise.all([pull(viaTiny), pull(viaSocks)]);
      expect(a.status).toBe(502);
      expect(a.body.errors[0].code).toBe("UNAVAILABLE");
      expect(a.body.errors[0].message).toContain(`through proxy http://127.0.0.1:${tiny.port}`);
      expect(b.status).toBe(502);
      expect(b.body.errors[0].message).toContain(`SOCKS proxy socks5://127.0.0.1:${socks.port}: cannot connect (ECONNREFUSED)`);

      const health = await (await fetch(`${viaSocks.url}/health`)).text();
      expect(health).toContain(`SOCKS proxy socks5://127.0.0.1:${socks.port}: cannot connect (ECONNREFUSED)`);
      for (const text of [JSON.stringify(a.body), JSON.stringify(b.body), health, viaTiny.log(), viaSocks.log()]) noSecrets(text);
      expect(JSON.stringify(b.body)).not.toContain(SOCKS_ACCOUNT.user);
    } finally {
      await Promise.all([viaTiny.stop(), viaSocks.stop(), tiny.stop(), socks.stop()]);
    }
  }, 60_000);

  test("wrong SOCKS credentials: a 502 saying the proxy refused them", async () => {
    const docxy = await docxyWith(upstream.registryUrl, dante.url.replace(SOCKS_ACCOUNT.password, "wrong-pass-x"));
    try {
      const result = await pull(docxy);
      expect(result.status).toBe(502);
      expect(result.body.errors[0].message).toBe(
        `upstream 127.0.0.1:${portOf(upstream.registryUrl)} is unreachable: SOCKS proxy socks5://127.0.0.1:${dante.port}: refused the username and password in the proxy URL`,
      );
      for (const text of [JSON.stringify(result.body), docxy.log()]) expect(text).not.toContain("wrong-pass");
    } finally {
      await docxy.stop();
    }
  }, 60_000);
});

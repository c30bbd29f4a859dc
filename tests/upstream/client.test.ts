/**
 * The upstream client's policies, against an in-process fake upstream: the
 * failures a real registry cannot be made to produce on demand (a hang, a
 * redirect chain to another origin, a hostile redirect to a file or an
 * internal address) — and the proxy refusals a real tinyproxy gives (or, for
 * a 407, cannot give).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryError } from "../../src/oci/errors";
import { UpstreamClient } from "../../src/upstream/client";
import { parseProxyUrl } from "../../src/upstream/proxy-url";
import { removeAtExit } from "../support/cleanup";
import { startTinyproxy } from "../support/outbound-proxies";

const SECRET = "secret-file-content-5f1c";
const secretDir = mkdtempSync(join(tmpdir(), "docxy-client-test-"));
removeAtExit(secretDir);
const secretFile = join(secretDir, "docxy.toml");
writeFileSync(secretFile, SECRET);
/** Where the hostile upstream's `/to/<name>` redirects. */
const HOSTILE: Record<string, string> = {
  file: `file://${secretFile}`,
  ftp: "ftp://127.0.0.1/pub/x",
  data: `data:text/plain,${SECRET}`,
  private10: "http://10.0.0.1/v2/x/blobs/sha256:1",
  private192: "http://192.168.0.1:8080/",
  metadata: "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
  mapped: "http://[::ffff:169.254.169.254]/",
  unspecified: "http://0.0.0.0:2375/containers/json",
};

const seen: { path: string; method: string; authorization: string | null; cookie: string | null }[] = [];
const other = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(request) {
    const url = new URL(request.url);
    seen.push({ path: url.pathname, method: request.method, authorization: request.headers.get("authorization"), cookie: request.headers.get("cookie") });
    return new Response("cdn-bytes", { headers: { "content-length": "9" } });
  },
});
const origin = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  async fetch(request) {
    const url = new URL(request.url);
    seen.push({ path: url.pathname, method: request.method, authorization: request.headers.get("authorization"), cookie: request.headers.get("cookie") });
    if (url.pathname === "/hang") return new Promise<Response>(() => {});
    if (url.pathname === "/same-origin") return new Response(null, { status: 307, headers: { location: "/final" } });
    if (url.pathname === "/final") return new Response("same");
    if (url.pathname === "/see-other") return new Response(null, { status: 303, headers: { location: `${other.url}see` } });
    if (url.pathname === "/loop") return new Response(null, { status: 302, headers: { location: "/loop" } });
    if (url.pathname === "/to-name") return new Response(null, { status: 307, headers: { location: `http://localhost:${other.port}/by-name` } });
    if (url.pathname.startsWith("/to/")) return new Response(null, { status: 307, headers: { location: HOSTILE[url.pathname.slice(4)]! } });
    return new Response(null, {
      status: 307,
      headers: { location: `${other.url}blob?sig=1`, "docker-content-digest": "sha256:" + "c".repeat(64) },
    });
  },
});
afterAll(() => {
  origin.stop(true);
  other.stop(true);
});

const client = new UpstreamClient({ headerMs: 300, idleMs: 60_000, maxRedirects: 3 }, "docxy/test");
const secrets = () => new Headers({ authorization: "Bearer secret-token", cookie: "a=b", accept: "x/y" });

test("a cross-origin redirect is followed without Authorization or cookies; HEAD stays HEAD", async () => {
  seen.length = 0;
  const { response, redirectedFrom } = await client.send({ method: "HEAD", url: `${origin.url}blob`, headers: secrets() });
  expect(response.status).toBe(200);
  expect(redirectedFrom?.get("docker-content-digest")).toBe("sha256:" + "c".repeat(64));
  expect(seen).toEqual([
    { path: "/blob", method: "HEAD", authorization: "Bearer secret-token", cookie: "a=b" },
    { path: "/blob", method: "HEAD", authorization: null, cookie: null },
  ]);
});

test("a same-origin redirect keeps the credentials", async () => {
  seen.length = 0;
  const { response } = await client.send({ method: "GET", url: `${origin.url}same-origin`, headers: secrets() });
  expect(await response.text()).toBe("same");
  expect(seen.map((s) => s.authorization)).toEqual(["Bearer secret-token", "Bearer secret-token"]);
});

test("redirects stop after max_redirects: a 502 UNAVAILABLE, the last Location never relayed", async () => {
  seen.length = 0;
  const error = await client.send({ method: "GET", url: `${origin.url}loop`, headers: new Headers() }).catch((e) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect(error.ociCode).toBe("UNAVAILABLE");
  expect(error.status).toBe(502);
  expect(error.message).toContain("more than 3 times");
  expect(seen).toHaveLength(4);
});

test("an upstream that never answers becomes a 504 UNAVAILABLE within the header budget", async () => {
  const error = await client.send({ method: "GET", url: `${origin.url}hang`, headers: new Headers() }).catch((e) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect(error.ociCode).toBe("UNAVAILABLE");
  expect(error.status).toBe(504);
});

test("an unreachable upstream becomes a 502 UNAVAILABLE that names the host, not the URL", async () => {
  const error = await client.send({ method: "GET", url: "http://127.0.0.1:1/v2/?token=x", headers: new Headers() }).catch((e) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect(error.status).toBe(502);
  expect(error.message).toContain("127.0.0.1:1");
  expect(error.message).not.toContain("token=x");
});

test("the header budget does not cap the body: a slow body outlives it", async () => {
  const slow = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch: () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(new Uint8Array(10)); // headers go out with the first chunk
          },
          async pull(controller) {
            await Bun.sleep(500); // longer than the 300 ms header budget
            controller.enqueue(new Uint8Array(10));
            controller.close();
          },
        }),
      ),
  });
  try {
    const { response } = await client.send({ method: "GET", url: slow.url.href, headers: new Headers() });
    expect((await response.arrayBuffer()).byteLength).toBe(20);
  } finally {
    slow.stop(true);
  }
});

test.each(Object.keys(HOSTILE))("a redirect to %s is refused as 502 UNAVAILABLE, nothing read or fetched", async (name) => {
  seen.length = 0;
  const error = await client.send({ method: "GET", url: `${origin.url}to/${name}`, headers: secrets() }).catch((e) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect({ code: error.ociCode, status: error.status }).toEqual({ code: "UNAVAILABLE", status: 502 });
  expect(error.message).toContain("refused");
  expect(error.message).not.toContain(SECRET);
  expect(error.message).not.toContain("security-credentials");
  expect(seen.map((s) => s.path)).toEqual([`/to/${name}`]);
});

test("a redirect to a name that resolves to the upstream's kind of address (localhost from 127.0.0.1) is followed", async () => {
  seen.length = 0;
  const { response } = await client.send({ method: "GET", url: `${origin.url}to-name`, headers: new Headers() });
  expect(await response.text()).toBe("cdn-bytes");
  expect(seen.map((s) => s.path)).toEqual(["/to-name", "/by-name"]);
});

test("a URL an upstream named (a discovered realm) is judged against the upstream: loopback from a private upstream only with allow_private_redirects", async () => {
  seen.length = 0;
  const named = { method: "GET" as const, url: `http://localhost:${other.port}/token`, headers: new Headers(), trustedUrl: "http://10.9.9.9:5000" };
  const error = await client.send(named).catch((e) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect(error.message).toContain(`http://localhost:${other.port}`);
  expect(error.message).toContain("loopback");
  expect(seen).toHaveLength(0);
  const { response } = await client.send({ ...named, allowPrivateRedirects: true });
  expect(await response.text()).toBe("cdn-bytes");
  expect(seen.map((s) => s.path)).toEqual(["/token"]);
});

test("allow_private_redirects still never follows a non-HTTP scheme", async () => {
  const error = await client.send({ method: "GET", url: `${origin.url}to/file`, headers: new Headers(), allowPrivateRedirects: true }).catch((e) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect(error.message).toContain("only http and https");
});

describe("through a proxy", () => {
  const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: RegistryError) => ({ status: error.status, message: error.message }));
  const direct = (env: Record<string, string>) => new UpstreamClient({ headerMs: 5_000, idleMs: 60_000, maxRedirects: 3 }, "docxy/test", undefined, env);

  test("a CONNECT that the real tinyproxy refuses (wrong password) is a 502 naming the proxy, not its credentials", async () => {
    const tinyproxy = await startTinyproxy({ user: "corp", password: "right-pass" });
    try {
      const wrong = parseProxyUrl(tinyproxy.url.replace("right-pass", "wrong-pass"));
      const error = await failure(direct({}).send({ method: "GET", url: "https://127.0.0.1:9/v2/", headers: new Headers(), proxy: wrong }));
      expect(error?.status).toBe(502);
      expect(error?.message).toStartWith(`upstream 127.0.0.1:9 is unreachable through proxy http://127.0.0.1:${tinyproxy.port}: `);
      expect(error?.message).not.toContain("pass");
    } finally {
      await tinyproxy.stop();
    }
  });

  test("a 407 on a plain-http hop is the proxy refusing docxy (tinyproxy 1.11 answers 401 instead, so a stand-in answers here)", async () => {
    const proxy = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("no", { status: 407, headers: { "proxy-authenticate": "Basic" } }) });
    try {
      const via = parseProxyUrl(`http://corp:pw-407@127.0.0.1:${proxy.port}`);
      const error = await failure(direct({}).send({ method: "GET", url: `${origin.url}v2/`, headers: new Headers(), proxy: via }));
      expect(error).toEqual({ status: 502, message: `proxy http://127.0.0.1:${proxy.port} refused docxy (407): check the user and password in its URL` });
    } finally {
      await proxy.stop(true);
    }
  });

  test("NO_PROXY listing a host an upstream's own proxy must reach is refused, not sent around the proxy", async () => {
    const error = await failure(
      direct({ NO_PROXY: "127.0.0.1" }).send({ method: "GET", url: `${origin.url}v2/`, headers: new Headers(), proxy: parseProxyUrl("socks5://u:pw@127.0.0.1:9") }),
    );
    expect(error).toEqual({
      status: 502,
      message: "NO_PROXY lists 127.0.0.1, and Bun's fetch would then reach it directly instead of through the upstream's proxy socks5://127.0.0.1:9: take it out of NO_PROXY",
    });
  });
});

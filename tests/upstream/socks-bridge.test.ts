/**
 * The loopback bridge that lets Bun's fetch use a SOCKS5 proxy, in front of a real dante-server:
 * CONNECT for https (TLS end to end through the tunnel), absolute-form forwarding for plain http
 * (bodies both ways), and its refusals.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseProxyUrl } from "../../src/upstream/proxy-url";
import { BRIDGE_FAILURE, SocksBridge } from "../../src/upstream/socks-bridge";
import { selfSignedCert } from "../support/certs";
import { PROXY_EGRESS, type ProxyServer, SOCKS_ACCOUNT, startDante } from "../support/outbound-proxies";
import { freePort } from "../support/ports";

const answer = async (req: Request, peer: string | undefined) =>
  new Response(`${req.method} ${new URL(req.url).pathname} from ${peer} body ${req.body ? (await req.text()).length : 0}`);
const plain = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req, server) => answer(req, server.requestIP(req)?.address) });
let tls: { server: ReturnType<typeof Bun.serve>; ca: string };
let dante: ProxyServer;
let bridge: SocksBridge;

beforeAll(async () => {
  const cert = await selfSignedCert("ec");
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: Bun.file(cert.cert), key: Bun.file(cert.key) },
    fetch: (req, srv) => answer(req, srv.requestIP(req)?.address),
  });
  tls = { server, ca: readFileSync(cert.cert, "utf8") };
  dante = await startDante(true);
  bridge = new SocksBridge(parseProxyUrl(dante.url));
});
afterAll(async () => {
  bridge?.close();
  await dante?.stop();
  await Promise.all([plain.stop(true), tls?.server.stop(true)]);
});

test("https through CONNECT: TLS is end to end, the connection leaves from the SOCKS proxy", async () => {
  const proxy = await bridge.url();
  for (const path of ["/v2/", "/v2/x/blobs/sha256:1"]) {
    const response = await fetch(`https://127.0.0.1:${tls.server.port}${path}`, { proxy, tls: { ca: tls.ca } });
    expect(await response.text()).toBe(`GET ${path} from ${PROXY_EGRESS} body 0`);
  }
  expect(dante.requests()).toContain(`127.0.0.1:${tls.server.port}`);
});

test("plain http in absolute form, to two origins over fetch's one proxy connection, with a request body", async () => {
  const proxy = await bridge.url();
  const other = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req, server) => answer(req, server.requestIP(req)?.address) });
  try {
    const a = await fetch(`http://127.0.0.1:${plain.port}/token`, { proxy, method: "POST", body: "grant_type=password&x=" + "y".repeat(100_000) });
    expect(await a.text()).toBe(`POST /token from ${PROXY_EGRESS} body 100022`);
    const b = await fetch(`http://127.0.0.1:${other.port}/cdn`, { proxy });
    expect(await b.text()).toBe(`GET /cdn from ${PROXY_EGRESS} body 0`);
  } finally {
    await other.stop(true);
  }
});

test("without the bridge's own secret it answers 407: no other local process borrows the SOCKS account", async () => {
  const { port } = new URL(await bridge.url());
  const response = await fetch(`http://127.0.0.1:${plain.port}/`, { proxy: `http://127.0.0.1:${port}` });
  expect(response.status).toBe(407);
  await expect(fetch(`https://127.0.0.1:${tls.server.port}/`, { proxy: `http://127.0.0.1:${port}`, tls: { ca: tls.ca } })).rejects.toThrow();
});

test("a tunnel that fails is a marked 502 (plain http) or a refused CONNECT (https), and failureFor says why", async () => {
  const wrong = new SocksBridge(parseProxyUrl(dante.url.replace(SOCKS_ACCOUNT.password, "not-the-password")));
  try {
    const proxy = await wrong.url();
    const response = await fetch(`http://127.0.0.1:${plain.port}/`, { proxy });
    expect([response.status, response.headers.has(BRIDGE_FAILURE)]).toEqual([502, true]);
    expect(wrong.failureFor("127.0.0.1", plain.port!)).toBe(`SOCKS proxy socks5://127.0.0.1:${dante.port}: refused the username and password in the proxy URL`);
    const closed = await freePort();
    await expect(fetch(`https://127.0.0.1:${closed}/`, { proxy, tls: { ca: tls.ca } })).rejects.toThrow();
    expect(wrong.failureFor("127.0.0.1", closed)).toContain("refused the username and password");
  } finally {
    wrong.close();
  }
});

/**
 * The SOCKS5 client against a real dante-server (tests/support/outbound-proxies.ts), with and
 * without username authentication; the destination is an in-process HTTP server that answers
 * with the address the connection came from (the proxy's egress, 127.0.0.2).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Socket } from "node:net";
import { parseProxyUrl } from "../../src/upstream/proxy-url";
import { openSocksTunnel } from "../../src/upstream/socks5";
import { freePort } from "../support/ports";
import { PROXY_EGRESS, type ProxyServer, SOCKS_ACCOUNT, startDante } from "../support/outbound-proxies";

const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req, server) => new Response(`from ${server.requestIP(req)?.address}`) });
let open: ProxyServer;
let authed: ProxyServer;

beforeAll(async () => {
  [open, authed] = await Promise.all([startDante(false), startDante(true)]);
});
afterAll(async () => {
  await Promise.all([open?.stop(), authed?.stop()]);
  await origin.stop(true);
});

/** One HTTP/1.1 exchange over the tunnel, read to the end (Connection: close). */
async function exchange(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  await new Promise((resolve) => socket.once("close", resolve));
  return Buffer.concat(chunks).toString();
}

const failure = (promise: Promise<unknown>) => promise.then(() => "", (error: Error) => error.message);

test("a tunnel through dante without authentication, by address, by local name (socks5) and by remote name (socks5h)", async () => {
  for (const [url, host] of [
    [open.url, "127.0.0.1"],
    [open.url, "localhost"],
    [open.url.replace("socks5://", "socks5h://"), "localhost"],
  ] as const) {
    const answer = await exchange(await openSocksTunnel(parseProxyUrl(url), host, origin.port!));
    expect(answer).toStartWith("HTTP/1.1 200");
    expect(answer).toEndWith(`from ${PROXY_EGRESS}`);
  }
  expect(open.requests().filter((r) => r.endsWith(`:${origin.port!}`)).length).toBe(3);
});

test("username/password authentication (RFC 1929) through dante", async () => {
  const answer = await exchange(await openSocksTunnel(parseProxyUrl(authed.url), "127.0.0.1", origin.port!));
  expect(answer).toEndWith(`from ${PROXY_EGRESS}`);
});

test("each failure names the proxy and what to fix, never the password", async () => {
  const display = `socks5://127.0.0.1:${authed.port}`;
  const wrong = parseProxyUrl(authed.url.replace(SOCKS_ACCOUNT.password, "wrong-password-1"));
  expect(await failure(openSocksTunnel(wrong, "127.0.0.1", origin.port!))).toBe(`SOCKS proxy ${display}: refused the username and password in the proxy URL`);
  expect(await failure(openSocksTunnel(parseProxyUrl(`socks5://127.0.0.1:${authed.port}`), "127.0.0.1", origin.port!))).toBe(
    `SOCKS proxy ${display}: requires authentication: put user:password@ in the proxy URL`,
  );
  const closed = await freePort();
  expect(await failure(openSocksTunnel(parseProxyUrl(`socks5://u:pw@127.0.0.1:${closed}`), "127.0.0.1", origin.port!))).toBe(
    `SOCKS proxy socks5://127.0.0.1:${closed}: cannot connect (ECONNREFUSED)`,
  );
  const refused = await freePort(); // nothing listens there: dante's connect fails
  expect(await failure(openSocksTunnel(parseProxyUrl(open.url), "127.0.0.1", refused))).toBe(
    `SOCKS proxy socks5://127.0.0.1:${open.port}: could not reach 127.0.0.1:${refused}: connection refused by the destination`,
  );
  expect(await failure(openSocksTunnel(parseProxyUrl(open.url), "no-such-host.invalid", origin.port!))).toBe(
    `SOCKS proxy socks5://127.0.0.1:${open.port}: cannot resolve no-such-host.invalid here; use socks5h:// to let the proxy resolve it`,
  );
});

/**
 * Where hits are redirected and which tickets the sendfile port accepts: only
 * the digest it was made for, only until it expires, only with this process's
 * key; never a redirect from TLS to plain HTTP unless configured.
 */
import { expect, test } from "bun:test";
import { SendfileRedirects } from "../../src/cache/sendfile-redirects";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const key = Buffer.alloc(32, 7);

function redirects(options: { url?: string; now?: () => number; key?: Buffer } = {}) {
  const r = new SendfileRedirects(options.url, options.key ?? key, options.now ?? (() => 1_000_000));
  r.listening(5001);
  return r;
}
const ticketOf = (location: string) => new URL(location).searchParams.get("ticket");

test("a client on plain HTTP goes to the same host, on the sendfile port, with a ticket for that blob", () => {
  const location = redirects().location("http://mirror.lan:5000", A)!;
  const url = new URL(location);
  expect(`${url.origin}${url.pathname}`).toBe(`http://mirror.lan:5001/blobs/${A}`);
  expect(ticketOf(location)).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/);
  expect(new URL(redirects().location("http://[fd00::5]:5000", A)!).host).toBe("[fd00::5]:5001");
});

test("no redirect before the port listens, nor away from TLS unless sendfile_url says where", () => {
  expect(new SendfileRedirects(undefined, key).location("http://mirror.lan:5000", A)).toBeUndefined();
  expect(redirects().location("https://mirror.lan", A)).toBeUndefined();
  const configured = redirects({ url: "http://fast.lan:8080/" }).location("https://mirror.lan", A)!;
  expect(configured.startsWith(`http://fast.lan:8080/blobs/${A}?ticket=`)).toBe(true);
});

test("a ticket admits its own digest only, only with the same key, and not once expired", () => {
  let now = 1_000_000;
  const r = redirects({ now: () => now });
  const ticket = ticketOf(r.location("http://mirror.lan:5000", A)!);
  expect(r.admits(A, ticket)).toBe(true);
  expect(r.admits(B, ticket)).toBe(false);
  expect(redirects({ key: Buffer.alloc(32, 8) }).admits(A, ticket)).toBe(false);
  const [expires, signature] = ticket!.split(".");
  expect(r.admits(A, `${Number(expires) + 3600}.${signature}`)).toBe(false); // extending it breaks the signature
  expect(r.admits(A, `${expires}.${signature!.slice(0, -1)}${signature!.endsWith("A") ? "B" : "A"}`)).toBe(false);
  for (const garbage of [null, "", "x", `${expires}.`, `${expires}.${signature}.1`, "-1.abc"]) expect(r.admits(A, garbage)).toBe(false);
  now += 61_000;
  expect(r.admits(A, ticket)).toBe(false);
});

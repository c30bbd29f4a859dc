/**
 * The client side of SOCKS5 (RFC 1928) with username/password
 * authentication (RFC 1929): opens one TCP tunnel to `host:port` through the
 * proxy and hands back the socket, ready for the bytes of HTTP or TLS.
 *
 * Written here rather than taken from npm: the CONNECT exchange is three small
 * messages, and a dependency would add two more packages (`socks` pulls
 * `ip-address` and `smart-buffer`) to a single-binary build for about a hundred
 * lines that are fully exercised by the dante-server tests.
 */
import { lookup } from "node:dns/promises";
import { isIP, Socket } from "node:net";
import type { OutboundProxy } from "./proxy-url";

/** A failure of the proxy itself (not of the upstream behind it), worded for an operator. */
export class ProxyError extends Error {}

/** A proxy that takes the connection but never answers must not pin a socket forever (fetch's own timer only ends fetch's side). */
const HANDSHAKE_MS = 30_000;

const VERSION = 5;
const NO_AUTH = 0x00;
const USER_PASS = 0x02;
const NO_ACCEPTABLE = 0xff;
const CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

/** RFC 1928 §6 reply codes. */
const REPLIES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by its rules",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused by the destination",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/** A tunnel to `host:port` through `proxy`; rejects with a ProxyError naming the proxy (never its credentials). */
export async function openSocksTunnel(proxy: OutboundProxy, host: string, port: number): Promise<Socket> {
  const socket = new Socket();
  const reader = new Reader(socket);
  const fail = (why: string) => new ProxyError(`SOCKS proxy ${proxy.display}: ${why}`);
  let timedOut = false;
  socket.setTimeout(HANDSHAKE_MS, () => {
    timedOut = true;
    socket.destroy(new Error("handshake timeout"));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", (e: NodeJS.ErrnoException) => reject(fail(`cannot connect (${e.code ?? e.message})`)));
      socket.connect(proxy.port, proxy.host);
    });

    const offered = proxy.username !== undefined ? [NO_AUTH, USER_PASS] : [NO_AUTH];
    socket.write(Buffer.from([VERSION, offered.length, ...offered]));
    const [version, method] = await reader.read(2, fail);
    if (version !== VERSION) throw fail("did not answer as a SOCKS5 server");
    if (method === NO_ACCEPTABLE) {
      throw fail(proxy.username === undefined ? "requires authentication: put user:password@ in the proxy URL" : "accepts none of docxy's authentication methods");
    }
    if (method === USER_PASS) {
      if (proxy.username === undefined) throw fail("asked for a username and password: put user:password@ in the proxy URL");
      const user = Buffer.from(proxy.username);
      const pass = Buffer.from(proxy.password ?? "");
      socket.write(Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]));
      const [, status] = await reader.read(2, fail);
      if (status !== 0) throw fail("refused the username and password in the proxy URL");
    } else if (method !== NO_AUTH) {
      throw fail(`chose an unknown authentication method (${method})`);
    }

    socket.write(Buffer.concat([Buffer.from([VERSION, CONNECT, 0]), await address(host, proxy.remoteDns, fail), Buffer.from([port >> 8, port & 0xff])]));
    const [, reply, , atyp] = await reader.read(4, fail);
    if (reply !== 0) throw fail(`could not reach ${host}:${port}: ${REPLIES[reply!] ?? `reply ${reply}`}`);
    const rest = atyp === ATYP_IPV4 ? 4 : atyp === ATYP_IPV6 ? 16 : (await reader.read(1, fail))[0]!;
    await reader.read(rest + 2, fail); // the bound address and port: nothing docxy needs
    reader.release();
    socket.setTimeout(0);
    return socket;
  } catch (error) {
    socket.destroy();
    if (timedOut) throw fail(`did not complete the handshake within ${HANDSHAKE_MS / 1000}s`);
    throw error instanceof ProxyError ? error : fail(String((error as Error).message ?? error));
  }
}

/**
 * The destination as SOCKS5 encodes it. `socks5h` sends the name for the proxy to resolve;
 * plain `socks5` resolves it here (the scheme's meaning for curl and every other client).
 */
async function address(host: string, remoteDns: boolean, fail: (why: string) => ProxyError): Promise<Buffer> {
  let ip = isIP(host) ? host : undefined;
  if (ip === undefined && !remoteDns) {
    try {
      ip = (await lookup(host)).address;
    } catch {
      throw fail(`cannot resolve ${host} here; use socks5h:// to let the proxy resolve it`);
    }
  }
  if (ip === undefined) {
    const name = Buffer.from(host);
    return Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name]);
  }
  if (isIP(ip) === 4) return Buffer.from([ATYP_IPV4, ...ip.split(".").map(Number)]);
  return Buffer.concat([Buffer.from([ATYP_IPV6]), ipv6Bytes(ip)]);
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(":") : []);
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return bytes;
}

/** Reads exact byte counts from the handshake, then gives any early tunnel bytes back to the socket. */
class Reader {
  private buffered = Buffer.alloc(0);
  private waiting?: () => void;
  private ended = false;
  private readonly onData = (chunk: Buffer) => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    this.waiting?.();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.waiting?.();
  };

  constructor(private readonly socket: Socket) {
    socket.on("data", this.onData);
    socket.on("close", this.onEnd);
    socket.on("error", this.onEnd); // a reset mid-handshake; without a listener it would throw
  }

  async read(count: number, fail: (why: string) => ProxyError): Promise<Buffer> {
    while (this.buffered.length < count) {
      if (this.ended) throw fail("closed the connection during the handshake");
      await new Promise<void>((resolve) => (this.waiting = resolve));
      this.waiting = undefined;
    }
    const out = this.buffered.subarray(0, count);
    this.buffered = this.buffered.subarray(count);
    return out;
  }

  release(): void {
    this.socket.off("data", this.onData);
    this.socket.off("close", this.onEnd);
    this.socket.off("error", this.onEnd);
    this.socket.pause();
    if (this.buffered.length > 0) this.socket.unshift(this.buffered);
  }
}

/**
 * manageIdleConnections on real node:http servers (inside Bun) and raw
 * client sockets: a silent socket, a request head trickled a header at a
 * time and an idle keep-alive connection are closed; a request being served
 * is not, however long it takes; HTTPS sockets get the same deadlines; a
 * drain closes idle connections at once and busy ones once their response is out.
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { connect, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { manageIdleConnections, type IdleConnections } from "../../src/server/idle-connections";
import { selfSignedCert } from "../support/certs";

const DEADLINES = { headMs: 300, idleMs: 500 };
const servers: http.Server[] = [];
afterAll(() => servers.forEach((s) => s.closeAllConnections()));

/** Answers "ok"; `/slow` answers after a second, longer than both deadlines together. */
const handler: http.RequestListener = (request, response) => {
  const answer = () => response.end("ok");
  if (request.url === "/slow") setTimeout(answer, 1_000);
  else answer();
};

async function listen(server: http.Server, secure: boolean, deadlines = DEADLINES): Promise<{ port: number; idle: IdleConnections }> {
  const idle = manageIdleConnections(server, deadlines, secure);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, idle };
}

const { port: plainPort } = await listen(http.createServer(handler), false);

/** Everything the server sent until it closed the connection. */
function untilClosed(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => undefined);
  return new Promise((resolve) => socket.on("close", () => resolve(Buffer.concat(chunks).toString())));
}

test("a socket that never sends a byte is closed", async () => {
  const socket = connect(plainPort, "127.0.0.1");
  expect(await untilClosed(socket)).toBe("");
});

test("a request head trickled a header at a time is closed before it is served", async () => {
  const socket = connect(plainPort, "127.0.0.1");
  const closed = untilClosed(socket);
  socket.write("GET / HTTP/1.1\r\nhost: x\r\n");
  const trickle = setInterval(() => socket.writable && socket.write("x-slow: 1\r\n"), 100);
  const received = await closed;
  clearInterval(trickle);
  expect(received).toBe("");
});

test("an idle keep-alive connection is closed after its response", async () => {
  const socket = connect(plainPort, "127.0.0.1");
  const closed = untilClosed(socket);
  socket.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
  const received = await closed;
  expect(received).toStartWith("HTTP/1.1 200");
  expect(received).toEndWith("ok");
});

test("a request served for longer than both deadlines gets its whole answer, and the connection is kept for the next", async () => {
  const socket = connect(plainPort, "127.0.0.1");
  const closed = untilClosed(socket);
  socket.write("GET /slow HTTP/1.1\r\nhost: x\r\n\r\n");
  let answers = 0;
  socket.on("data", (chunk: Buffer) => {
    if (!chunk.toString().endsWith("ok")) return;
    answers++;
    if (answers === 1) socket.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n"); // within the keep-alive period
  });
  const received = await closed;
  expect(received.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
  expect(answers).toBe(2);
});

test("HTTPS: a client that completes the handshake and sends nothing is closed", async () => {
  const files = await selfSignedCert("ec");
  const { port } = await listen(https.createServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }, handler), true);
  const socket = tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false });
  await new Promise<void>((resolve) => socket.once("secureConnect", () => resolve()));
  expect(await untilClosed(socket)).toBe("");
});

test("drain: an idle connection closes at once, a busy one as soon as its response is out, and the server can close", async () => {
  const hour = 3_600_000;
  let served!: () => void;
  const serving = new Promise<void>((resolve) => (served = resolve));
  let finish!: () => void;
  const server = http.createServer((_request, response) => {
    finish = () => response.end("ok");
    served();
  });
  let connections = 0;
  server.on("connection", () => connections++);
  const { port, idle } = await listen(server, false, { headMs: hour, idleMs: hour });
  // Bun reports a connection that sends nothing after about a second: wait until the server has it.
  const silent = connect(port, "127.0.0.1");
  const silentClosed = untilClosed(silent);
  await waitUntil(() => connections === 1);
  const busy = connect(port, "127.0.0.1");
  const busyClosed = untilClosed(busy);
  busy.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n"); // keep-alive: without the drain it would stay open for an hour
  await serving;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  idle.drain();
  expect(await silentClosed).toBe("");
  finish();
  const received = await busyClosed;
  expect(received).toStartWith("HTTP/1.1 200");
  expect(received).toEndWith("ok");
  await closed;
});

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await Bun.sleep(20);
}

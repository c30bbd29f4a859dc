/**
 * The plain-HTTP edge under hostile or odd input: whatever arrives, the
 * process answers in registry JSON or drops the connection, and keeps serving.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { startDocxy, type Docxy } from "../support/docxy-process";
import { json } from "../support/proxied-upstream";
import { rawRequest } from "../support/raw-http";

let docxy: Docxy;
beforeAll(async () => {
  docxy = await startDocxy({ args: ["--upstream", "http://127.0.0.1:1"], env: { DOCXY_UPSTREAM_PING_TIMEOUT: "1" } });
});
afterAll(async () => {
  await docxy?.stop();
});

/** Writes raw bytes, returns whatever comes back before the server closes (or 2 s pass). */
function rawBytes(bytes: Buffer | string): Promise<string> {
  const { port } = new URL(docxy.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), "127.0.0.1", () => socket.write(bytes));
    let out = "";
    socket.on("data", (d) => (out += d.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(out));
    setTimeout(() => socket.destroy(), 2000);
  });
}

const alive = async () => expect((await fetch(`${docxy.url}/generate_204`)).status).toBe(204);

test("a TLS ClientHello on the plain-HTTP port (Docker, containers/image probe HTTPS first) is dropped", async () => {
  const clientHello = Buffer.from("16030100a5010000a10303" + "00".repeat(160), "hex");
  expect(await rawBytes(clientHello)).not.toContain("HTTP/1.1 200");
  await alive();
});

test("garbage request lines and oversized headers do not hurt the process", async () => {
  await rawBytes("NOT HTTP AT ALL\r\n\r\n");
  await rawBytes(`GET /v2/ HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(70_000)}\r\n\r\n`);
  await alive();
});

test.each([
  ["bad percent-encoding", "/v2/%zz/manifests/latest", 400],
  ["encoded path traversal", "/v2/..%2F..%2Fetc/passwd/manifests/latest", 400],
  ["a 200-character tag", "/v2/a/manifests/" + "t".repeat(200), 400],
  ["a 400-character name", "/v2/" + "a/".repeat(200) + "manifests/latest", 400],
  ["an upload path", "/v2/library/x/blobs/uploads/", 404],
  ["the catalog", "/v2/_catalog", 404],
  ["an unknown path", "/nope", 404],
])("%s gets a registry-JSON error", async (_label, path, status) => {
  const response = await fetch(`${docxy.url}${path}`);
  expect(response.status).toBe(status);
  expect((await json(response)).errors[0].code).toMatch(/^[A-Z_]+$/);
  await alive();
});

test("an absolute-form request target cannot pick another host", async () => {
  const response = await rawRequest(`${docxy.url}/nope`, "GET", {});
  expect(response.status).toBe(404);
  const out = await rawBytes("GET http://evil.test/v2/ HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
  expect(out).not.toContain("evil.test");
  await alive();
});

test("push methods are refused with 405 UNSUPPORTED and an Allow header", async () => {
  for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
    const response = await fetch(`${docxy.url}/v2/library/x/blobs/uploads/`, { method, body: method === "DELETE" ? undefined : "x" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    expect((await json(response)).errors[0].code).toBe("UNSUPPORTED");
  }
});

test("an unreachable upstream is a 502 registry error on pulls, never a stack trace", async () => {
  const response = await fetch(`${docxy.url}/v2/library/x/manifests/latest`);
  expect(response.status).toBe(502);
  const body = await json(response);
  expect(body.errors[0].code).toBe("UNAVAILABLE");
  expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/);
});

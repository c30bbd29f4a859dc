/**
 * The plain-HTTP edge under hostile or odd input: whatever arrives, the
 * process answers in registry JSON or drops the connection, and keeps serving.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { json } from "../../support/proxied-upstream";
import { rawRequest } from "../../support/raw-http";

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
  ["a 200-character tag (no tag, so no such manifest)", "/v2/a/manifests/" + "t".repeat(200), 404],
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

describe("the routed path never depends on Host; a request body has a deadline", () => {
  let authed: Docxy;
  beforeAll(async () => {
    // docxy's own users: `/v2/` is answered by docxy itself (a 401 challenge), no upstream involved.
    authed = await startDocxy({
      args: ["--upstream", "http://127.0.0.1:1"],
      config: `[server]\nrequest_body_timeout = 1\n[auth]\nenabled = true\ntokens = ["ci:bridge-test-token-0123456789"]\n`,
    });
  });
  afterAll(async () => {
    await authed?.stop();
  });

  /** The raw exchange on `authed`: everything up to the server's close (or `waitMs`). */
  const exchange = (head: string, trickle?: { bytes: number; everyMs: number }, waitMs = 5000) =>
    new Promise<{ out: string; closedByServer: boolean }>((resolve) => {
      const socket = connect(Number(new URL(authed.url).port), "127.0.0.1", () => socket.write(head));
      let out = "";
      let sent = 0;
      const ticker = trickle && setInterval(() => !socket.destroyed && sent++ < trickle.bytes && socket.write("a"), trickle.everyMs);
      const timer = setTimeout(() => finish(false), waitMs);
      const finish = (closedByServer: boolean) => {
        clearInterval(ticker);
        clearTimeout(timer);
        socket.destroy();
        resolve({ out, closedByServer });
      };
      socket.on("data", (d) => (out += d.toString("latin1")));
      socket.on("error", () => undefined);
      socket.on("close", () => finish(true));
    });
  const accessLines = () =>
    authed
      .log()
      .split("\n")
      .filter((l) => l.startsWith("{") && l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l));

  test.each([
    ["Host: x", "GET /v2/ HTTP/1.1\r\nhost: x\r\n"],
    ["Host: ab", "GET /v2/ HTTP/1.1\r\nhost: ab\r\n"],
    ["Host: abc", "GET /v2/ HTTP/1.1\r\nhost: abc\r\n"],
    ["an empty Host", "GET /v2/ HTTP/1.1\r\nhost:\r\n"],
    ["an absolute-form target", "GET http://x/v2/ HTTP/1.1\r\nhost: x\r\n"],
  ])("GET /v2/ with %s reaches the /v2/ route and is logged as /v2/", async (_label, head) => {
    const before = accessLines().length;
    const { out } = await exchange(`${head}connection: close\r\n\r\n`);
    expect(out).toStartWith("HTTP/1.1 401 ");
    expect(out.toLowerCase()).toContain('www-authenticate: bearer realm="');
    expect(out).not.toContain("<!doctype html>");
    await Bun.sleep(50); // the access line is written when the exchange closes
    const lines = accessLines().slice(before);
    expect(lines.map((l) => [l.method, l.path, l.status])).toEqual([["GET", "/v2/", 401]]);
  });

  test("a token POST whose body trickles in is answered 408 at the deadline and its connection closed", async () => {
    const head = "POST /auth/token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 200\r\n\r\n";
    // A byte every 200 ms: 200 bytes would take 40 s; the deadline is 1 s.
    const { out, closedByServer } = await exchange(head, { bytes: 200, everyMs: 200 }, 10_000);
    expect(closedByServer).toBe(true);
    expect(out).toStartWith("HTTP/1.1 408 ");
    expect(out).toContain('"code":"BAD_REQUEST"');
    expect(out).toContain("request body not received within 1s");
    await alive();
  }, 15_000);

  test("a body that arrives in time is served as before", async () => {
    const form = "grant_type=password&username=ci&password=bridge-test-token-0123456789&service=docxy";
    const response = await fetch(`${authed.url}/auth/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form });
    expect(response.status).toBe(200);
    expect(typeof (await json(response)).access_token).toBe("string");
  });
});

/**
 * The sendfile port's answers, in process: the cached file by digest with a
 * valid ticket (whole, a range, HEAD), and registry JSON for everything else.
 * The port itself, the redirect to it and real clients following it are in
 * tests/server/sendfile-listener.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSendfileHandler } from "../../src/http/sendfile-app";
import { RegistryError } from "../../src/oci/errors";

const logged: string[] = [];
const dir = mkdtempSync(join(tmpdir(), "docxy-sendfile-app-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const content = Buffer.from("0123456789abcdefghij");
const digest = `sha256:${new Bun.CryptoHasher("sha256").update(content).digest("hex")}`;
const gone = `sha256:${"0".repeat(64)}`;
writeFileSync(join(dir, "blob"), content);

const handler = createSendfileHandler(
  { committedFile: async (d) => (d === digest ? { path: join(dir, "blob"), size: content.length } : undefined) },
  { admits: (_d, ticket) => ticket === "good" },
  {
    check: (address) => {
      if (address === "10.9.9.9") throw new RegistryError("DENIED", "access denied: not in the allowed networks");
      if (address === "disk-fails") throw new Error("EIO: secret internal detail");
    },
  },
  { error: (message, fields) => logged.push(`${message} ${JSON.stringify(fields)}`) },
);
const ask = (path: string, init: RequestInit = {}, peer = "127.0.0.1") => handler(new Request(`http://docxy:5001${path}`, init), peer);
const codeOf = async (response: Response) => ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code;

test("with a valid ticket: the file whole, a range of it, or its head", async () => {
  const whole = await ask(`/blobs/${digest}?ticket=good`);
  expect(whole.status).toBe(200);
  expect(Buffer.from(await whole.arrayBuffer())).toEqual(content);
  expect(Object.fromEntries(["content-length", "docker-content-digest", "x-cache", "content-disposition"].map((h) => [h, whole.headers.get(h)]))).toEqual({
    "content-length": "20",
    "docker-content-digest": digest,
    "x-cache": "HIT",
    "content-disposition": "inline",
  });
  const range = await ask(`/blobs/${digest}?ticket=good`, { headers: { range: "bytes=-5" } });
  expect({ status: range.status, range: range.headers.get("content-range"), body: await range.text() }).toEqual({ status: 206, range: "bytes 15-19/20", body: "fghij" });
  const head = await ask(`/blobs/${digest}?ticket=good`, { method: "HEAD" });
  expect({ status: head.status, length: head.headers.get("content-length"), body: head.body }).toEqual({ status: 200, length: "20", body: null });
  const outside = await ask(`/blobs/${digest}?ticket=good`, { headers: { range: "bytes=20-" } });
  expect({ status: outside.status, range: outside.headers.get("content-range") }).toEqual({ status: 416, range: "bytes */20" });
});

test("everything else is a registry error", async () => {
  const cases: [string, Response, number, string][] = [
    ["no ticket", await ask(`/blobs/${digest}`), 403, "DENIED"],
    ["a bad ticket", await ask(`/blobs/${digest}?ticket=bad`), 403, "DENIED"],
    ["a blob no longer cached", await ask(`/blobs/${gone}?ticket=good`), 404, "BLOB_UNKNOWN"],
    ["not a blob path", await ask(`/v2/x/blobs/${digest}?ticket=good`), 404, "NOT_FOUND"],
    ["a digest that is not sha256 hex", await ask(`/blobs/sha256:XYZ?ticket=good`), 404, "NOT_FOUND"],
    ["a denied network", await ask(`/blobs/${digest}?ticket=good`, {}, "10.9.9.9"), 403, "DENIED"],
    ["a method other than GET and HEAD", await ask(`/blobs/${digest}?ticket=good`, { method: "DELETE" }), 405, "UNSUPPORTED"],
  ];
  for (const [why, response, status, code] of cases) {
    expect({ why, status: response.status, code: await codeOf(response) }).toEqual({ why, status, code });
  }
});

test("an unexpected failure is a generic 500 in registry JSON, its detail only in the log", async () => {
  const response = await ask(`/blobs/${digest}?ticket=good`, {}, "disk-fails");
  const body = await response.text();
  expect({ status: response.status, code: JSON.parse(body).errors[0].code }).toEqual({ status: 500, code: "UNKNOWN" });
  expect(body).not.toContain("EIO");
  expect(logged.some((line) => line.includes("EIO: secret internal detail"))).toBe(true);
});

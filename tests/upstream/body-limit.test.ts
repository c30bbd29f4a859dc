/**
 * The body caps, on real HTTP answers from an in-process raw-TCP upstream
 * (chunked, lying and short bodies a real registry does not send), read
 * through the real upstream client. Also pins the Bun fetch behaviour the
 * caps rely on: a body is cut at its Content-Length, fails when it ends
 * short, and a Content-Length beside Transfer-Encoding frames nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { cappedBody, readCapped, type BodyLimit } from "../../src/upstream/body-limit";
import { UpstreamClient } from "../../src/upstream/client";
import { sendChunked, startFakeRegistry, type FakeRegistry } from "../support/cache/fake-registry";

const LIMIT: BodyLimit = { bytes: 1024 * 1024, what: "test body", code: "UNAVAILABLE" };
const MiB = 1024 * 1024;
const sent = new Map<string, Promise<number>>();
let fake: FakeRegistry;
beforeAll(async () => {
  fake = await startFakeRegistry((request, reply) => {
    const path = new URL(request.path, "http://x").pathname;
    if (path === "/chunked-small") return void sent.set(path, sendChunked(reply, 200, {}, 1000));
    if (path === "/chunked-huge") return void sent.set(path, sendChunked(reply, 200, {}, 64 * MiB));
    if (path === "/lying-length") return void sent.set(path, sendChunked(reply, 200, { "content-length": "10" }, 64 * MiB));
    if (path === "/announced-huge") {
      reply.head(200, { "content-length": String(64 * MiB) });
      return void sent.set(path, reply.write(new Uint8Array(MiB)).then(() => MiB));
    }
    if (path === "/announced-small") return reply.send(200, {}, "x".repeat(500));
    if (path === "/longer-than-announced") {
      reply.head(200, { "content-length": "5" });
      void reply.write(Buffer.from("0123456789abcdef")).then(() => reply.end());
      return;
    }
    if (path === "/shorter-than-announced") {
      reply.head(200, { "content-length": "50" });
      void reply.write(Buffer.from("0123")).then(() => reply.end());
      return;
    }
    reply.send(404);
  });
});
afterAll(() => fake?.stop());

const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 0 }, "docxy/test");
const get = async (path: string) => (await client.send({ method: "GET", url: `${fake.url}${path}`, headers: new Headers() })).response;

async function refused(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RegistryError)) throw new Error(`expected a refusal, got ${String(error)}`);
  expect({ code: error.ociCode, status: error.status }).toEqual({ code: "UNAVAILABLE", status: 502 });
  expect(error.message).toBe("upstream fake sent a test body over 1 MiB");
  return error;
}

test("a chunked body within the cap is read whole", async () => {
  const bytes = await readCapped(await get("/chunked-small"), LIMIT, "fake");
  expect(bytes.length).toBe(1000);
});

test("a chunked body over the cap is refused once the cap is passed, and the upstream is cut off", async () => {
  await refused(readCapped(await get("/chunked-huge"), LIMIT, "fake"));
  expect(await sent.get("/chunked-huge")).toBeLessThan(64 * MiB);
});

test("a Content-Length beside Transfer-Encoding is no length: the chunked body is still capped", async () => {
  const response = await get("/lying-length");
  expect(response.headers.get("content-length")).toBe("10"); // Bun keeps the header…
  await refused(cappedBody(response, LIMIT, "fake", new Headers()));
  expect(await sent.get("/lying-length")).toBeLessThan(64 * MiB); // …and reads the chunks
});

test("an announced length over the cap is refused before the body is read", async () => {
  await refused(readCapped(await get("/announced-huge"), LIMIT, "fake"));
});

test("cappedBody: an announced body within the cap streams as is; a chunked one is read and given its length", async () => {
  const announced = await get("/announced-small");
  const headers = new Headers();
  const stream = await cappedBody(announced, LIMIT, "fake", headers);
  expect(stream).toBeInstanceOf(ReadableStream);
  expect(headers.has("content-length")).toBe(false);
  expect(await new Response(stream).text()).toBe("x".repeat(500));

  const chunked = await cappedBody(await get("/chunked-small"), LIMIT, "fake", headers);
  expect(chunked).toBeInstanceOf(Uint8Array);
  expect(headers.get("content-length")).toBe("1000");
});

test("Bun's fetch cuts a body at its Content-Length and fails one that ends short (what the streaming path relies on)", async () => {
  expect(await (await get("/longer-than-announced")).text()).toBe("01234");
  expect(await (await get("/shorter-than-announced")).text().catch((e: Error) => e)).toBeInstanceOf(Error);
});

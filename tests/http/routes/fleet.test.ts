/**
 * `/_fleet/fills/<digest>` (http/routes/fleet.ts) through the whole app in
 * process: a fleet node whose Redis is real (tests/support/redis.ts) fills a
 * blob from a fake upstream that sends half of it and waits. A request
 * signed with the fleet's secret reads that fill in progress, every byte,
 * the last one only once the upstream finished, and once committed, from
 * the store; anything else — unsigned,
 * signed with another secret, expired, replayed, for another path, or
 * carrying a valid registry token of docxy's own users — is refused with
 * registry JSON and no byte. A single node refuses even a signed request.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { FleetSigner, FLEET_SIGNATURE_HEADER } from "../../../src/fleet/signing";
import { createApp } from "../../../src/http/app";
import { startFakeRegistry, type FakeRegistry } from "../../support/cache/fake-registry";
import { startRedis, type Redis } from "../../support/redis";
import { inProcessServices, type InProcess } from "../../support/services";

const SECRET = "fleet-secret-for-the-route-test-0123456789";
const CI_TOKEN = "ci-token-for-the-fleet-route-0123456789";
const BLOB = randomBytes(1024 * 1024);
const DIGEST = `sha256:${createHash("sha256").update(BLOB).digest("hex")}`;
const FILL_PATH = `/_fleet/fills/${DIGEST}`;
const HALF = BLOB.length / 2;

let redis: Redis;
let fake: FakeRegistry;
let node: InProcess;
let single: InProcess;
let finishUpstream!: () => void;
const upstreamFinishes = new Promise<void>((resolve) => (finishUpstream = resolve));

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeRegistry(async (request, reply) => {
    if (!request.path.endsWith(`/blobs/${DIGEST}`)) return reply.send(404, { "content-type": "application/json" }, "{}");
    const headers = { "content-type": "application/octet-stream", "content-length": String(BLOB.length), "docker-content-digest": DIGEST };
    if (request.method === "HEAD") return reply.send(200, headers);
    reply.head(200, headers);
    await reply.write(BLOB.subarray(0, HALF));
    await upstreamFinishes;
    await reply.write(BLOB.subarray(HALF));
    reply.end();
  });
  const auth = `[auth]\nenabled = true\ntokens = ["ci:${CI_TOKEN}"]\n`;
  node = await inProcessServices(`${fake.toml}${auth}[fleet]\nredis_url = "${redis.url}"\nadvertise_url = "http://127.0.0.1:1"\nsecret = "${SECRET}"\n`);
  single = await inProcessServices(`${fake.toml}${auth}`);
});

afterAll(async () => {
  finishUpstream();
  for (const { services } of [node, single]) {
    services.fleet?.close();
    services.cache?.index.close();
  }
  await fake.stop();
  await redis.stop();
});

function fleetRequest(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`http://127.0.0.1:5000${path}`, { headers });
}

async function expectRefused(response: Response, status: number): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toStartWith("application/json");
  const body = await response.text();
  expect(JSON.parse(body).errors[0].code).toBeString();
  expect(body.length).toBeLessThan(1000); // no blob in it
}

test("a signed request streams a fill in progress; every other request is refused with registry JSON and no byte", async () => {
  const app = createApp(node.services);
  const client = await app.handle(fleetRequest(`/v2/library/app/blobs/${DIGEST}`, { authorization: `Bearer ${CI_TOKEN}` }));
  expect(client.status).toBe(200);
  expect(client.headers.get("x-cache")).toBe("MISS");
  const clientBytes = new Response(client.body).arrayBuffer();

  const signer = new FleetSigner(SECRET);
  const peer = await app.handle(fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: signer.sign("GET", FILL_PATH) }));
  expect(peer.status).toBe(200);
  expect(peer.headers.get("content-length")).toBe(String(BLOB.length));
  const reader = peer.body!.getReader();
  let received = 0;
  const chunks: Uint8Array[] = [];
  while (received < HALF) {
    const { value } = await reader.read(); // the first half, while the upstream holds the rest back
    chunks.push(value!);
    received += value!.length;
  }
  expect(received).toBe(HALF);

  // A range's last byte too waits for the blob to be verified: read once the upstream finished.
  const ranged = await app.handle(fleetRequest(FILL_PATH, { range: "bytes=10-19", [FLEET_SIGNATURE_HEADER]: signer.sign("GET", FILL_PATH) }));
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get("content-length")).toBe("10");
  const rangedBytes = ranged.arrayBuffer();

  const used = signer.sign("GET", FILL_PATH);
  const first = await app.handle(fleetRequest(FILL_PATH, { range: "bytes=0-0", [FLEET_SIGNATURE_HEADER]: used }));
  expect(first.status).toBe(206);
  const firstBytes = first.arrayBuffer();
  const refusals: [string, Request][] = [
    ["unsigned", fleetRequest(FILL_PATH)],
    ["a valid registry token", fleetRequest(FILL_PATH, { authorization: `Bearer ${CI_TOKEN}` })],
    ["another secret", fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: new FleetSigner("x".repeat(40)).sign("GET", FILL_PATH) })],
    ["expired", fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: signer.sign("GET", FILL_PATH, Date.now() - 60_000) })],
    ["replayed", fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: used })],
    ["for another path", fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: signer.sign("GET", "/_fleet/fills/sha256:" + "0".repeat(64)) })],
    ["for another method", fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: signer.sign("HEAD", FILL_PATH) })],
    ["garbage", fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: "1.2.3" })],
  ];
  for (const [, request] of refusals) await expectRefused(await app.handle(request), 401);

  finishUpstream();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  const whole = Buffer.concat(chunks);
  expect(`sha256:${createHash("sha256").update(whole).digest("hex")}`).toBe(DIGEST);
  expect(Buffer.from(await clientBytes).equals(BLOB)).toBe(true);
  expect(new Uint8Array(await rangedBytes)).toEqual(new Uint8Array(BLOB.subarray(10, 20)));
  expect(new Uint8Array(await firstBytes)).toEqual(new Uint8Array(BLOB.subarray(0, 1)));

  // Committed since: a node asking now (the lease still points here) gets the blob from the store.
  const late = await app.handle(fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: signer.sign("GET", FILL_PATH) }));
  expect(late.status).toBe(200);
  expect(Buffer.from(await late.arrayBuffer()).equals(BLOB)).toBe(true);
  const head = await app.handle(new Request(`http://127.0.0.1:5000${FILL_PATH}`, { method: "HEAD", headers: { [FLEET_SIGNATURE_HEADER]: signer.sign("HEAD", FILL_PATH) } }));
  expect([head.status, head.headers.get("content-length")]).toEqual([200, String(BLOB.length)]);
  expect(node.services.cache!.blobs.inUse(DIGEST)).toBe(false); // neither read holds the blob against eviction any more
});

test("a single node (no [fleet]) refuses even a correctly signed request", async () => {
  const app = createApp(single.services);
  const signer = new FleetSigner(SECRET);
  await expectRefused(await app.handle(fleetRequest(FILL_PATH, { [FLEET_SIGNATURE_HEADER]: signer.sign("GET", FILL_PATH) })), 404);
  await expectRefused(await app.handle(fleetRequest(FILL_PATH, { authorization: `Bearer ${CI_TOKEN}` })), 404);
});

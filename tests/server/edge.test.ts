/**
 * The edge in process: built from the services, it binds the ports the
 * configuration asks for (port 0: picked by the kernel), serves the app
 * through node:http, records each exchange, and closes. The listeners'
 * modes (standalone HTTPS, redirects, bind addresses) are tested through the
 * binary in tests/integration/server/.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createEdge, type Serving } from "../../src/server/edge";
import type { Services } from "../../src/services";
import { inProcessServices } from "../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../support/upstream";

let upstream: Upstream;
let services: Services;
let serving: Serving;

beforeAll(async () => {
  upstream = await startUpstream();
  const server = `[server]\nhttp_port = 0\nbind = ["127.0.0.1"]\nsendfile_enabled = true\nsendfile_port = 0\n[log]\naccess = "off"\n`;
  services = (await inProcessServices(`${server}${upstreamEntryToml(upstream)}`)).services;
  serving = await createEdge(services).start();
}, 60_000);
afterAll(async () => {
  await serving?.close(1000);
  await upstream?.stop();
});

const proxyUrl = () => {
  const proxy = serving.addresses.find((a) => a.role === "proxy")!;
  return `http://${proxy.host}:${proxy.port}`;
};

test("the proxy port and the sendfile port are bound on the configured address", () => {
  expect(serving.addresses.map((a) => [a.scheme, a.role, a.host])).toEqual([
    ["http", "proxy", "127.0.0.1"],
    ["http", "sendfile", "127.0.0.1"],
  ]);
  for (const a of serving.addresses) expect(a.port).toBeGreaterThan(0);
  expect(serving.addresses[0]!.port).not.toBe(serving.addresses[1]!.port);
});

test("a request through the socket reaches the app with its connection facts, and is counted once it ends", async () => {
  const response = await fetch(`${proxyUrl()}/v2/`, { headers: { host: `localhost:${serving.addresses[0]!.port}` } });
  expect(response.status).toBe(401);
  // The realm names the Host the client used (a name of this machine), which only the edge knows.
  expect(response.headers.get("www-authenticate")).toBe(`Bearer realm="http://localhost:${serving.addresses[0]!.port}/auth/dockerhub/token",service="test-registry"`);
  await response.arrayBuffer();
  let counted = 0;
  for (let i = 0; i < 50 && counted === 0; i++) {
    await Bun.sleep(20);
    counted = (await services.metrics.requests.get()).values.find((v) => v.labels.route === "v2" && v.labels.status === "401")?.value ?? 0;
  }
  expect(counted).toBe(1);
});

test("the sendfile port answers its own requests only: anything but a blob ticket is a registry 404", async () => {
  const sendfile = serving.addresses.find((a) => a.role === "sendfile")!;
  const response = await fetch(`http://${sendfile.host}:${sendfile.port}/v2/`);
  expect(response.status).toBe(404);
  expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NOT_FOUND");
});

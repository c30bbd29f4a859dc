/**
 * A request's context travels on the request: the app reads the connection
 * facts the edge put there (not the URL's authority, which is the socket's
 * address) and leaves its notes on it for the access log.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../src/http/app";
import { contextOf, ServedRequest, type Connection } from "../../src/http/request-context";
import { inProcessServices } from "../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../support/upstream";

let upstream: Upstream;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  upstream = await startUpstream();
  app = createApp((await inProcessServices(upstreamEntryToml(upstream))).services);
}, 60_000);
afterAll(() => upstream?.stop());

const connection = (facts: Partial<Connection>): Connection => ({ host: "localhost:5000", secure: false, localPort: 5000, remoteAddress: "192.0.2.7", ...facts });

test("the realm comes from the connection's Host, not from the URL the edge built", async () => {
  const request = new ServedRequest("http://127.0.0.1:5000/v2/", {}, connection({ host: "localhost:5000" }));
  const response = await app.handle(request);
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBe('Bearer realm="http://localhost:5000/auth/dockerhub/token",service="test-registry"');
});

test("a registry request leaves the client, registry, repository and the origin that answered in its notes", async () => {
  const request = new ServedRequest("http://127.0.0.1:5000/v2/acme/app/manifests/v1", { headers: { "x-forwarded-for": "10.9.9.9" } }, connection({}));
  const response = await app.handle(request);
  expect(response.status).toBe(401); // no token: the upstream's challenge, with docxy's realm
  // X-Forwarded-For counts only from a trusted proxy, and none is configured.
  expect(request.context.notes).toEqual({ client: "192.0.2.7", registry: "docker.io", repository: "acme/app", source: upstream.registryUrl });
});

test("a request not noted by any route (the health check) keeps empty notes", async () => {
  const request = new ServedRequest("http://127.0.0.1:5000/generate_204", {}, connection({}));
  expect((await app.handle(request)).status).toBe(204);
  expect(request.context.notes).toEqual({});
});

test("a Request built without a server gets its facts from its URL", () => {
  expect(contextOf(new Request("https://docxy.example/v2/"))).toEqual({
    connection: { host: "docxy.example", secure: true, localPort: 443, remoteAddress: "" },
    notes: {},
  });
  expect(contextOf(new Request("http://127.0.0.1:5000/v2/")).connection).toEqual({ host: "127.0.0.1:5000", secure: false, localPort: 5000, remoteAddress: "" });
});

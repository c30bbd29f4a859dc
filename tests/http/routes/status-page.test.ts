/**
 * The status page in process, against the real test registry: the
 * configuration it offers names this proxy as the client reached it, and
 * pulls of private images show to the operator only. The page in a real
 * browser, after real pulls through the binary:
 * tests/integration/http/routes/status-page.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../../src/http/app";
import { ServedRequest } from "../../../src/http/request-context";
import type { Services } from "../../../src/services";
import { inProcessServices } from "../../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../../support/upstream";

const ADMIN = "admin-token-for-tests-0123456789";
let upstream: Upstream;
let services: Services;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  upstream = await startUpstream();
  services = (await inProcessServices(`[admin]\ntoken = "${ADMIN}"\n${upstreamEntryToml(upstream)}`)).services;
  app = createApp(services);
}, 60_000);
afterAll(() => upstream?.stop());

const page = async (headers: Record<string, string> = {}) => {
  const request = new ServedRequest("http://127.0.0.1:5000/", { headers }, { host: "localhost:5000", secure: false, localPort: 5000, remoteAddress: "127.0.0.1" });
  const response = await app.handle(request);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
  return response.text();
};

test("the client configuration names this proxy by the Host the client used, and the upstream's state is shown", async () => {
  const html = await page();
  expect(html).toContain('{ "registry-mirrors": ["http://localhost:5000"] }');
  expect(html).toContain('location = "localhost:5000"\ninsecure = true');
  expect(html).toContain(`<td>dockerhub</td><td>${upstream.registryUrl}</td><td class="ok">reachable</td>`);
});

test("a pull of a repository not known to be public shows to the operator only, with its client", async () => {
  services.recentPulls.add({ time: "2026-12-04T10:11:12.000Z", client: "192.0.2.44", registry: "docker.io", repository: "private/secret", reference: "latest", status: 200, cache: "MISS" });
  const visitor = await page();
  expect(visitor).not.toContain("private/secret");
  expect(visitor).not.toContain("192.0.2.44");
  expect(visitor).toContain("no pulls of public images yet");
  const operator = await page({ authorization: `Bearer ${ADMIN}` });
  expect(operator).toContain("<tr><td>10:11:12</td><td>docker.io/private/secret:latest</td><td>200</td><td>MISS</td><td>192.0.2.44</td></tr>");
});

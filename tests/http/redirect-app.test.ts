/** The plain-HTTP port of standalone HTTPS, in process: registry, token and health paths go to HTTPS, nothing else exists. */
import { expect, test } from "bun:test";
import { createRedirectApp } from "../../src/http/redirect-app";
import { ServedRequest } from "../../src/http/request-context";
import { inProcessServices } from "../support/services";

const over = (path: string, host: string | null) => new ServedRequest(`http://127.0.0.1:5000${path}`, {}, { host, secure: false, localPort: 5000, remoteAddress: "127.0.0.1" });

test("a Host naming this machine keeps its name, with the HTTPS port; path and query kept", async () => {
  const app = createRedirectApp((await inProcessServices("")).services, 8443);
  for (const path of ["/v2/", "/v2/library/alpine/manifests/3.20?ns=docker.io", "/auth/token?scope=x", "/health"]) {
    const response = await app.handle(over(path, "localhost:5000"));
    expect([response.status, response.headers.get("location")]).toEqual([301, `https://localhost:8443${path}`]);
  }
  const standard = createRedirectApp((await inProcessServices("")).services, 443);
  expect((await standard.handle(over("/v2/", "localhost"))).headers.get("location")).toBe("https://localhost/v2/");
});

test("public_base_url wins over any Host", async () => {
  const app = createRedirectApp((await inProcessServices(`[server]\npublic_base_url = "https://docxy.example"\n`)).services, 8443);
  const response = await app.handle(over("/v2/", "attacker.example"));
  expect(response.headers.get("location")).toBe("https://docxy.example/v2/");
});

test("any other path is a registry-JSON 404", async () => {
  const app = createRedirectApp((await inProcessServices("")).services, 8443);
  for (const path of ["/", "/metrics", "/admin/cache", "/v2x"]) {
    const response = await app.handle(over(path, "localhost:5000"));
    expect(response.status).toBe(404);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NOT_FOUND");
  }
});

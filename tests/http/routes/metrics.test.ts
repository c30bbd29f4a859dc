/** `/metrics` in process: Prometheus text, the access rules applied as on the registry API. */
import { expect, test } from "bun:test";
import { createApp } from "../../../src/http/app";
import { ServedRequest } from "../../../src/http/request-context";
import { inProcessServices } from "../../support/services";

const from = (remoteAddress: string) => new ServedRequest("http://127.0.0.1:5000/metrics", {}, { host: "localhost:5000", secure: false, localPort: 5000, remoteAddress });

test("the exposition names docxy's metrics", async () => {
  const { services } = await inProcessServices("");
  services.metrics.exchange("v2", undefined, 401, 86, undefined);
  const response = await createApp(services).handle(from("127.0.0.1"));
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toStartWith("text/plain");
  expect(await response.text()).toContain('docxy_http_requests_total{route="v2",registry="",status="401"} 1');
});

test("an address [access] denies gets DENIED", async () => {
  const app = createApp((await inProcessServices(`[access]\ndeny = ["192.0.2.0/24"]\n`)).services);
  const denied = await app.handle(from("192.0.2.9"));
  expect(denied.status).toBe(403);
  expect(((await denied.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DENIED");
  expect((await app.handle(from("198.51.100.9"))).status).toBe(200);
});

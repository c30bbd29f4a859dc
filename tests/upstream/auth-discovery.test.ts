/**
 * AuthDiscovery in process against the real test registry, through a real
 * UpstreamClient that counts what it sends.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { AuthDiscovery } from "../../src/upstream/auth-discovery";
import { UpstreamClient, type UpstreamRequest, type UpstreamResponse } from "../../src/upstream/client";
import type { Upstream } from "../../src/upstream/table";
import { startUpstream, type Upstream as TestUpstream } from "../support/upstream";

class CountingClient extends UpstreamClient {
  sent: string[] = [];
  override send(request: UpstreamRequest): Promise<UpstreamResponse> {
    this.sent.push(request.url);
    return super.send(request);
  }
}

let registry: TestUpstream;
beforeAll(async () => {
  registry = await startUpstream();
}, 60_000);
afterAll(() => registry?.stop());

const setup = () => {
  const client = new CountingClient({ headerMs: 5000, idleMs: 5000, maxRedirects: 5 }, "docxy/test");
  return { client, discovery: new AuthDiscovery(client, 5000) };
};
const upstreamAt = (url: string, over: Partial<Upstream> = {}): Upstream => ({ name: "test", registry: "test.example", url, hosts: [], autoLibraryPrefix: false, ...over });

test("learnt from the upstream's /v2/ challenge once, then known without the network", async () => {
  const { client, discovery } = setup();
  const upstream = upstreamAt(registry.registryUrl);
  expect(discovery.known(upstream)).toBeUndefined();
  const expected = { realm: registry.realm, service: registry.service, namedBy: registry.registryUrl };
  expect(await discovery.tokenService(upstream)).toEqual(expected);
  expect(await discovery.tokenService(upstream)).toEqual(expected);
  expect(client.sent).toEqual([`${registry.registryUrl}/v2/`]);
});

test("configured realm and service win, without asking", async () => {
  const { client, discovery } = setup();
  const upstream = upstreamAt(registry.registryUrl, { authRealm: "https://auth.example/token", authService: "example" });
  expect(await discovery.tokenService(upstream)).toEqual({ realm: "https://auth.example/token", service: "example" });
  expect(client.sent).toEqual([]);
});

test("a relayed 401's challenge teaches it too; a Basic challenge or a realm that is no URL does not", () => {
  const { discovery } = setup();
  const upstream = upstreamAt("https://registry.example");
  discovery.learn(upstream, 'Basic realm="registry"');
  discovery.learn(upstream, 'Bearer realm="not a url",service="x"');
  expect(discovery.known(upstream)).toBeUndefined();
  discovery.learn(upstream, 'Bearer realm="https://registry.example/token",service="reg"');
  expect(discovery.known(upstream)).toEqual({ realm: "https://registry.example/token", service: "reg", namedBy: "https://registry.example" });
});

test("an upstream without token authentication is UNSUPPORTED (404)", async () => {
  const { discovery } = setup();
  // The CDN answers /v2/ without any challenge.
  const error = await discovery.tokenService(upstreamAt(registry.cdnUrl)).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RegistryError);
  expect([(error as RegistryError).ociCode, (error as RegistryError).status]).toEqual(["UNSUPPORTED", 404]);
});

/**
 * The composition root in process: what createServices builds from a
 * configuration, and the choices it makes for the routes.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/load";
import { createLogger } from "../src/observability/logger";
import { createServices } from "../src/services";
import { selfSignedCert } from "./support/certs";
import { inProcessServices } from "./support/services";

const UPSTREAM = `[[registry.upstreams]]\nname = "lan"\nupstream_registry = "http://127.0.0.1:9"\nauth_realm = "http://127.0.0.1:9/token"\nauth_service = "lan"\n`;
const withAccount = `${UPSTREAM}credentials = [{ username = "ci", password_env = "LAN_PASSWORD" }]\n`;
const anonymous = new Request("http://127.0.0.1:5000/v2/");
const withCredentials = new Request("http://127.0.0.1:5000/v2/", { headers: { authorization: "Bearer theirs" } });

test("by default: the cache in its directory, no sendfile port without asking, no users of its own, reload finds no certificate", async () => {
  const { services, dir } = await inProcessServices("");
  expect(services.cache?.dir).toBe(`${dir}/cache`);
  expect(services.sendfile).toBeUndefined();
  expect(services.proxyAuth).toBeUndefined();
  expect(services.reload()).toEqual({ certificate: "none" });
  expect(services.upstreams.default.name).toBe("dockerhub");
});

test("the cache off: no cache and no sendfile port", async () => {
  const { services } = await inProcessServices(`[cache]\nenabled = false\n`);
  expect(services.cache).toBeUndefined();
  expect(services.sendfile).toBeUndefined();
});

test("the sendfile port's tickets exist when asked for and the cache is usable", async () => {
  const { services } = await inProcessServices(`[server]\nsendfile_enabled = true\n`);
  expect(services.sendfile).toBeDefined();
});

test("who pulls upstream: docxy's account for clients without credentials, the client's own otherwise", async () => {
  const { services } = await inProcessServices(withAccount, { LAN_PASSWORD: "pw" });
  const lan = services.upstreams.byName("lan")!;
  expect(services.upstreamIdentity(lan, anonymous)).toBe("proxy");
  expect(services.upstreamIdentity(lan, withCredentials)).toBe("client");
  expect(services.upstreamIdentity(services.upstreams.byName("ghcr")!, anonymous)).toBe("client"); // no account there
  expect(services.upstreamAuth.accountsOf(lan).map((a) => a.username)).toEqual(["ci"]);
});

test("with docxy's own users every pull upstream is docxy's", async () => {
  const { services } = await inProcessServices(`[auth]\nenabled = true\ntokens = ["ci:static-token-of-ci-0123456789"]\n${UPSTREAM}`);
  expect(services.proxyAuth).toBeDefined();
  expect(services.upstreamIdentity(services.upstreams.byName("lan")!, withCredentials)).toBe("proxy");
});

test("with HTTPS, reload re-reads the certificate files from the start", async () => {
  const { cert, key } = await selfSignedCert("ec");
  const { services } = await inProcessServices(`[server]\nhttps_enabled = true\nhttps_port = 0\n[tls]\ncert_path = "${cert}"\nkey_path = "${key}"\n`);
  expect(services.reload()).toEqual({ certificate: "unchanged" });
  services.certificates.close();
});

test("the metrics read the cache at scrape time", async () => {
  const { services } = await inProcessServices("");
  const text = await services.metrics.registry.metrics();
  expect(text).toContain("docxy_cache_size_bytes 0");
  expect(text).toContain("docxy_cache_entries 0");
});

test("a secret gone by the time the services are built is named by the key written, counting entries without credentials", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-services-"));
  const path = join(dir, "docxy.toml");
  writeFileSync(path, `${UPSTREAM}${withAccount.replace('name = "lan"', 'name = "lan2"')}`);
  const { config } = await loadConfig({ path, env: { LAN_PASSWORD: "pw" }, overrides: { "cache.dir": join(dir, "cache") } });
  const built = createServices(config, createLogger("error", () => {}), { env: {} });
  await expect(built).rejects.toThrow("registry.upstreams[1].credentials[0].password_env: LAN_PASSWORD is not set");
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Listener topology (Wharf's `[server]` modes), HTTPS from PEM files and the
 * HTTP→HTTPS redirect, through the binary and against the real upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { selfSignedCert, type CertFiles } from "../../support/certs";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { json } from "../../support/proxied-upstream";
import { rawRequest } from "../../support/raw-http";
import { skopeoOk } from "../../support/skopeo";
import { freePort, registryToml, startUpstream, type Upstream } from "../../support/upstream";

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream();
}, 60_000);
afterAll(async () => {
  await upstream?.stop();
});

const registry = () => registryToml(upstream);
const insecure = { tls: { rejectUnauthorized: false } } as RequestInit;

describe.each(["ec", "rsa"] as const)("standalone HTTPS with a %s certificate", (kind) => {
  let docxy: Docxy;
  let certs: CertFiles;
  let origin: string;
  const https = () => docxy.listeners.find((l) => l.scheme === "https")!;
  const http = () => docxy.listeners.find((l) => l.scheme === "http")!;

  beforeAll(async () => {
    certs = await selfSignedCert(kind);
    const port = await freePort();
    origin = `https://127.0.0.1:${port}`;
    docxy = await startDocxy({
      config: `[server]
http_enabled = true
https_enabled = true
https_port = ${port}
public_base_url = "${origin}"
${registry()}
[tls]
cert_path = "${certs.cert}"
key_path = "${certs.key}"
`,
    });
  }, 30_000);
  afterAll(async () => {
    await docxy?.stop();
  });

  test("HTTPS serves the proxy; the realm is public_base_url", async () => {
    expect(https().role).toBe("proxy");
    const response = await fetch(`https://127.0.0.1:${https().port}/v2/`, insecure);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toStartWith(`Bearer realm="${origin}/auth/dockerhub/token"`);
  });

  test("skopeo pulls over HTTPS", async () => {
    const raw = await skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://127.0.0.1:${https().port}/acme/app:v1`);
    expect(raw).toBe(new TextDecoder().decode(upstream.images.app.bytes));
  });

  test("HTTP only 301-redirects registry, token and health paths to public_base_url, whatever the Host", async () => {
    expect(http().role).toBe("redirect");
    const base = `http://127.0.0.1:${http().port}`;
    for (const path of ["/v2/", "/v2/library/alpine/manifests/latest?ns=docker.io", "/auth/token?scope=x", "/health"]) {
      const response = await rawRequest(`${base}${path}`, "GET", { host: "evil.test", "x-forwarded-host": "evil.test" });
      expect(response.status).toBe(301);
      expect(response.headers.location).toBe(`${origin}${path}`);
    }
    const other = await fetch(`${base}/generate_204`, { redirect: "manual" });
    expect(other.status).toBe(404);
    expect((await json(other)).errors[0].code).toBe("NOT_FOUND");
  });
});

test("behind_proxy: the HTTP port serves the full proxy even with HTTPS on", async () => {
  const certs = await selfSignedCert("ec");
  const docxy = await startDocxy({
    args: ["--https-port", "0"],
    config: `[server]\nhttps_enabled = true\nbehind_proxy = true\n${registry()}\n[tls]\ncert_path = "${certs.cert}"\nkey_path = "${certs.key}"\n`,
  });
  try {
    expect(docxy.listeners.map((l) => `${l.scheme}:${l.role}`).sort()).toEqual(["http:proxy", "https:proxy"]);
    expect((await fetch(`${docxy.url}/v2/`)).status).toBe(401);
  } finally {
    await docxy.stop();
  }
});

test("an unreadable certificate is a configuration error naming the key, and nothing starts", async () => {
  const certs = await selfSignedCert("ec");
  writeFileSync(certs.cert, "not a certificate");
  const child = Bun.spawn(
    [(await import("../../support/docxy-process")).DOCXY_BIN, "--http-port", "0", "--https-port", "0", "--bind", "127.0.0.1"],
    { env: { DOCXY_SERVER_HTTPS_ENABLED: "true", DOCXY_TLS_CERT_PATH: certs.cert, DOCXY_TLS_KEY_PATH: certs.key }, stderr: "pipe", stdout: "pipe" },
  );
  expect(await child.exited).toBe(2);
  expect(await new Response(child.stderr).text()).toContain("tls.cert_path");
});

test("without public_base_url the realm uses a Host naming this machine, never a foreign one", async () => {
  const docxy = await startDocxy({ config: registry() });
  try {
    const own = await rawRequest(`${docxy.url}/v2/`, "GET", { host: "localhost:5000" });
    expect(own.headers["www-authenticate"]).toStartWith('Bearer realm="http://localhost:5000/auth/dockerhub/token"');
    const forged = await rawRequest(`${docxy.url}/v2/`, "GET", { host: "evil.test" });
    expect(forged.status).toBe(401);
    expect(forged.headers["www-authenticate"]).not.toContain("evil.test");
    expect(forged.headers["cache-control"]).toBe("no-store");
  } finally {
    await docxy.stop();
  }
});

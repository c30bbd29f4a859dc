/**
 * The binary with `[tls] acme_domains`: Pebble (Let's Encrypt's test CA)
 * validates through docxy's own HTTP port, issues a short-lived certificate
 * the HTTPS listener serves, and docxy renews it by itself and serves the new
 * one without a restart — checked with a TLS client that trusts Pebble's root.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { PEBBLE_BIN, startPebble, type Pebble } from "../../support/pebble";
import { freePort } from "../../support/upstream";

const unavailable = existsSync(PEBBLE_BIN) ? undefined : `${PEBBLE_BIN} is missing: apt-get install -y pebble`;
if (unavailable) console.warn(`SKIPPED tests/integration/server/certificates.test.ts: ${unavailable}`);

let pebble: Pebble;
let docxy: Docxy;
let httpsPort: number;

beforeAll(async () => {
  if (unavailable) return;
  const work = mkdtempSync(join(tmpdir(), "docxy-acme-e2e-"));
  const httpPort = await freePort();
  httpsPort = await freePort();
  pebble = await startPebble({ workDir: work, httpPort, validitySeconds: 12 });
  docxy = await startDocxy({
    args: ["--http-port", String(httpPort)],
    config: `[server]
http_port = ${httpPort}
https_port = ${httpsPort}
https_enabled = true
public_base_url = "https://127.0.0.1:${httpsPort}"
[tls]
acme_domains = ["127.0.0.1"]
acme_directory = "${pebble.directoryUrl}"
acme_ca_root = "${pebble.tlsCaPath}"
acme_dir = "${join(work, "acme")}"
`,
  });
}, 90_000);
afterAll(async () => {
  await docxy?.stop();
  await pebble?.stop();
});

/** The certificate docxy's HTTPS listener presents, verified against Pebble's root. */
function served(root: string): Promise<{ fingerprint: string; san: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: httpsPort, ca: root, servername: undefined, checkServerIdentity: () => undefined }, () => {
      const certificate = socket.getPeerCertificate();
      if (!socket.authorized) reject(new Error(`not trusted: ${socket.authorizationError}`));
      else resolve({ fingerprint: certificate.fingerprint256, san: certificate.subjectaltname ?? "" });
      socket.end();
    });
    socket.on("error", reject);
  });
}

test.skipIf(unavailable !== undefined)("docxy gets its certificate over ACME, serves it, then renews it live", async () => {
  const root = await pebble.root();
  const first = await served(root);
  expect(first.san).toContain("IP Address:127.0.0.1");
  expect(docxy.log()).toMatch(/msg="ACME certificate" names=127.0.0.1 result=issued/);

  // 12 s certificates are renewed once less than a third is left: within ~10 s, no restart.
  let now = first;
  for (let i = 0; i < 100 && now.fingerprint === first.fingerprint; i++) {
    await Bun.sleep(200);
    now = await served(root);
  }
  expect(now.fingerprint).not.toBe(first.fingerprint);
  expect(now.san).toContain("IP Address:127.0.0.1");
  const response = await fetch(`https://127.0.0.1:${httpsPort}/health`, { tls: { ca: root } } as RequestInit);
  expect(response.status).toBe(200);
}, 60_000);

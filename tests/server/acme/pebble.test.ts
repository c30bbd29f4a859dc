/**
 * Built-in ACME against Pebble, Let's Encrypt's test CA, with real HTTP-01
 * validation through docxy's node:http bridge: issuance, storage and reuse
 * across a restart, and renewal at a third of the lifetime left reaching a
 * running HTTPS server without a restart.
 *
 * Pebble issues 15-second certificates here, so renewal is due 10 s after
 * issuance: the tests run in order and the renewal test waits for it.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import * as acme from "acme-client";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createLogger } from "../../../src/observability/logger";
import { withAcmeChallenges } from "../../../src/server/acme/challenges";
import { AcmeManager, type AcmeOptions } from "../../../src/server/acme/manager";
import { renewalTime } from "../../../src/server/acme/renewal";
import { FileSender } from "../../../src/server/file-sender";
import { nodeHandler } from "../../../src/server/node-bridge";
import { CertificateStore } from "../../../src/server/tls-store";
import { waitFor } from "../../support/cache/harness";
import { removeAtExit } from "../../support/cleanup";
import { startPebble, type Pebble } from "../../support/pebble";

const VALIDITY_S = 15;

let pebble: Pebble;
let challengeServer: http.Server;
let acmeDir: string;
/** what Pebble's VA asked the challenge listener, and what it got */
const validations: { path: string; status: number }[] = [];
/** the manager whose challenges the listener answers (a "restart" swaps it) */
let answering: AcmeManager | undefined;
const logLines: string[] = [];
const createOrder = spyOn(acme.Client.prototype, "createOrder");

beforeAll(async () => {
  const workDir = mkdtempSync(join(tmpdir(), "docxy-pebble-"));
  removeAtExit(workDir);
  acmeDir = join(workDir, "acme");
  // The plain-HTTP listener as docxy would run it: node:http → bridge → challenge wrapper → app.
  const app = () => new Response("not a challenge", { status: 404 });
  const handler = nodeHandler(
    withAcmeChallenges((token) => answering?.challengeResponse(token), app),
    (exchange) => validations.push({ path: exchange.path, status: exchange.status }),
    new FileSender(),
    30_000,
  );
  challengeServer = http.createServer(handler);
  await new Promise<void>((resolve) => challengeServer.listen({ port: 0, host: "127.0.0.1" }, resolve));
  pebble = await startPebble({ workDir, httpPort: (challengeServer.address() as AddressInfo).port, validitySeconds: VALIDITY_S });
}, 30_000);

afterAll(async () => {
  answering?.stop();
  await pebble?.stop();
  challengeServer?.closeAllConnections();
  await new Promise<void>((resolve) => (challengeServer ? challengeServer.close(() => resolve()) : resolve()));
});

function options(overrides: Partial<AcmeOptions> = {}): AcmeOptions {
  return {
    directoryUrl: pebble.directoryUrl,
    names: ["127.0.0.1"],
    email: "ops@docxy.test",
    dir: acmeDir,
    caRootPath: pebble.tlsCaPath, // Pebble's own HTTPS
    log: createLogger("debug", (line) => logLines.push(line)),
    ...overrides,
  };
}

const pemBlocks = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];

/** Fingerprint of the certificate a verifying TLS client is served: it must chain to Pebble's root and name 127.0.0.1. */
function servedVerified(port: number, root: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: root }, () => {
      if (!socket.authorized) reject(new Error(`not authorized: ${socket.authorizationError}`));
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on("error", reject);
  });
}

describe("ACME against Pebble", () => {
  let issued: X509Certificate;

  test("issues a certificate for 127.0.0.1 after real HTTP-01 validation, chained to Pebble's root", async () => {
    const manager = new AcmeManager(options());
    answering = manager;
    expect(await manager.ensureCertificate()).toBe("issued");
    expect(createOrder).toHaveBeenCalledTimes(1);

    // Pebble's VA fetched the token from our listener and got it (an exchange is recorded when its
    // connection lets go of the response, which may be after the order completed).
    await waitFor(() => validations.some((v) => v.path.startsWith("/.well-known/acme-challenge/")), "the validation's exchange");
    const challengeHits = validations.filter((v) => v.path.startsWith("/.well-known/acme-challenge/"));
    expect(challengeHits.length).toBeGreaterThan(0);
    expect(challengeHits.every((v) => v.status === 200)).toBe(true);

    const chain = pemBlocks(readFileSync(manager.certPath, "utf8"));
    expect(chain.length).toBe(2); // leaf + intermediate
    issued = new X509Certificate(chain[0]!);
    expect(issued.subjectAltName).toBe("IP Address:127.0.0.1");
    const lifetime = issued.validToDate.getTime() - issued.validFromDate.getTime();
    expect(Math.abs(lifetime - VALIDITY_S * 1000)).toBeLessThanOrEqual(1500); // Pebble's notAfter is inclusive: 1 s short

    const intermediate = new X509Certificate(await pebble.intermediate());
    const root = new X509Certificate(await pebble.root());
    expect(new X509Certificate(chain[1]!).fingerprint256).toBe(intermediate.fingerprint256);
    expect(issued.checkIssued(intermediate)).toBe(true);
    expect(issued.verify(intermediate.publicKey)).toBe(true);
    expect(intermediate.verify(root.publicKey)).toBe(true);
    expect(issued.checkPrivateKey(createPrivateKey(readFileSync(manager.keyPath)))).toBe(true);

    // On disk: keys private to docxy.
    expect(statSync(acmeDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(acmeDir, "account.key")).mode & 0o777).toBe(0o600);
    expect(statSync(manager.keyPath).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(acmeDir, "cert.json"), "utf8"))).toMatchObject({ directoryUrl: pebble.directoryUrl, names: ["127.0.0.1"] });
    expect(logLines.some((l) => l.includes("acme: certificate stored"))).toBe(true);
  }, 30_000);

  test("a restart reuses the stored certificate and account: no new order", async () => {
    const before = { cert: readFileSync(join(acmeDir, "cert.pem"), "utf8"), account: readFileSync(join(acmeDir, "account.key"), "utf8") };
    const validationsBefore = validations.length;
    const manager = new AcmeManager(options()); // a new process would build exactly this
    answering = manager;
    expect(await manager.ensureCertificate()).toBe("stored");
    expect(createOrder).toHaveBeenCalledTimes(1);
    expect(validations.length).toBe(validationsBefore);
    expect(readFileSync(join(acmeDir, "cert.pem"), "utf8")).toBe(before.cert);
    expect(readFileSync(join(acmeDir, "account.key"), "utf8")).toBe(before.account);
  });

  test("renews at a third of the lifetime left; a running HTTPS server serves the new certificate", async () => {
    const root = await pebble.root();
    const reloads: string[] = [];
    const storeErrors: Error[] = [];
    const manager = new AcmeManager(options({ onCertificate: () => store.reload() }));
    answering = manager;
    const store = CertificateStore.open({
      certPath: manager.certPath,
      keyPath: manager.keyPath,
      onReload: (files) => reloads.push(new X509Certificate(files.cert).fingerprint256),
      onError: (error) => storeErrors.push(error),
    });
    const server = https.createServer({ ...store.current }, (_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1" }, resolve));
    store.attach(server);
    const port = (server.address() as AddressInfo).port;
    try {
      expect(await servedVerified(port, root)).toBe(issued.fingerprint256);
      const validationsBefore = validations.length;
      manager.start();
      const deadline = Date.now() + (VALIDITY_S + 10) * 1000;
      while (reloads.length === 0 && Date.now() < deadline) await Bun.sleep(100);
      manager.stop();

      expect(reloads.length).toBe(1);
      expect(Date.now()).toBeGreaterThanOrEqual(renewalTime(issued).getTime()); // not earlier than due
      expect(createOrder).toHaveBeenCalledTimes(2);
      await waitFor(() => validations.length > validationsBefore, "a new validation (PEBBLE_AUTHZREUSE=0)"); // validated again
      const renewed = new X509Certificate(readFileSync(manager.certPath, "utf8"));
      expect(renewed.fingerprint256).not.toBe(issued.fingerprint256);
      expect(renewed.subjectAltName).toBe("IP Address:127.0.0.1");
      expect(reloads[0]).toBe(renewed.fingerprint256);

      // Same server object, never restarted: new connections get the renewed certificate.
      await Bun.sleep(50);
      expect(await servedVerified(port, root)).toBe(renewed.fingerprint256);
      expect(storeErrors).toEqual([]);
    } finally {
      manager.stop();
      store.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, (VALIDITY_S + 20) * 1000);

  test("a name the CA cannot validate fails the order with the CA's reason, and stores nothing", async () => {
    // 127.0.0.2 is loopback too, but the challenge listener is bound to 127.0.0.1 only: Pebble's
    // VA really connects, and is refused.
    const dir = join(acmeDir, "..", "unvalidated");
    const manager = new AcmeManager(options({ names: ["127.0.0.2"], dir }));
    answering = manager;
    const error = await manager.ensureCertificate().then(() => undefined, (e: Error) => e);
    expect(error?.message).toContain("http-01 validation of ip:127.0.0.2 failed");
    expect(error?.message).toContain("connection refused");
    expect(() => statSync(join(dir, "cert.pem"))).toThrow();
  }, 30_000);

  test("an unreachable CA is reported at once, with the cause", async () => {
    const manager = new AcmeManager(options({ directoryUrl: "https://127.0.0.1:1/dir", dir: join(acmeDir, "..", "unreachable") }));
    const started = Date.now();
    const error = await manager.ensureCertificate().then(() => undefined, (e: Error) => e);
    expect(error?.message).toContain("ACME directory https://127.0.0.1:1/dir unreachable");
    expect(error?.message).toContain("ECONNREFUSED");
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

/**
 * Certificate hot reload: files replaced on disk (or SIGHUP-style reload())
 * reach a running node:https server without a restart and without cutting a
 * request in flight; broken material never replaces a working certificate.
 * Also pins the Bun facts tls-apply.ts is built on.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { CertificateStore, type CertificateStoreOptions } from "../../src/server/tls-store";
import type { TlsFiles } from "../../src/server/tls";
import { selfSignedCert } from "../support/certs";
import { removeAtExit } from "../support/cleanup";

let first: TlsFiles; // EC
let second: TlsFiles; // RSA, so a mix-up of the two is caught too
let expired: TlsFiles;
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

beforeAll(async () => {
  const read = (files: { cert: string; key: string }) => ({ cert: readFileSync(files.cert, "utf8"), key: readFileSync(files.key, "utf8") });
  first = read(await selfSignedCert("ec"));
  second = read(await selfSignedCert("rsa"));
  expired = await expiredCert();
});

/** A fresh directory with cert.pem/key.pem holding `files`. */
function certDir(files: TlsFiles) {
  const dir = mkdtempSync(join(tmpdir(), "docxy-tls-store-"));
  removeAtExit(dir);
  const paths = { certPath: join(dir, "cert.pem"), keyPath: join(dir, "key.pem") };
  replace(paths.certPath, files.cert);
  replace(paths.keyPath, files.key);
  return paths;
}

/** How certbot and most tools replace a file: write aside, rename over. */
function replace(path: string, content: string) {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

/** A store whose reloads and errors can be awaited. */
function openStore(options: Partial<CertificateStoreOptions> & { certPath: string; keyPath: string }) {
  const reloads: string[] = [];
  const errors: Error[] = [];
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  const store = CertificateStore.open({
    debounceMs: 50,
    ...options,
    onReload: (files) => (reloads.push(fingerprint(files.cert)), wake()),
    onError: (error) => (errors.push(error), wake()),
  });
  const next = (what: () => boolean, timeoutMs = 5000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out waiting for the store")), timeoutMs);
      const check = () => (what() ? (clearTimeout(timer), resolve()) : waiters.push(check));
      check();
    });
  return { store, reloads, errors, next };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startHttps(store: CertificateStore) {
  const server = https.createServer({ ...store.current }, async (req, res) => {
    if (req.url === "/slow") {
      // 10 chunks over ~1 s, with an exact length: a cut would show as an incomplete body
      res.writeHead(200, { "content-length": "10" });
      for (let i = 0; i < 10; i++) {
        res.write("x");
        await Bun.sleep(100);
      }
      res.end();
      return;
    }
    res.end("ok");
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1" }, resolve));
  store.attach(server);
  cleanups.push(() => new Promise<void>((resolve) => (server.close(() => resolve()), server.closeAllConnections())));
  return { server, port: (server.address() as AddressInfo).port };
}

/** The certificate a new TLS connection is served. */
function served(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on("error", reject);
  });
}

function get(port: number, path: string, agent: https.Agent | false = false) {
  return new Promise<{ body: string; complete: boolean; fingerprint: string }>((resolve, reject) => {
    https
      .get({ host: "127.0.0.1", port, path, agent, rejectUnauthorized: false }, (res) => {
        const fingerprint = (res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
        let body = "";
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve({ body, complete: res.complete, fingerprint }));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

describe("Bun facts behind tls-apply.ts", () => {
  test("node:https has no setSecureContext and never calls SNICallback", async () => {
    let called = 0;
    const server = https.createServer({ ...first, SNICallback: (_name, cb) => (called++, cb(null, tls.createSecureContext(second))) });
    await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1" }, resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    expect(typeof (server as { setSecureContext?: unknown }).setSecureContext).toBe("undefined");
    const fp = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, servername: "docxy.test", rejectUnauthorized: false }, () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.end();
      });
      socket.on("error", reject);
    });
    // If either assertion starts failing after a Bun upgrade, tls-apply.ts can use the standard way.
    expect(called).toBe(0);
    expect(fp).toBe(fingerprint(first.cert));
  });
});

describe("CertificateStore", () => {
  test("a replaced file reaches a running server; a request in flight completes on the old certificate", async () => {
    const paths = certDir(first);
    const { store, reloads, next } = openStore(paths);
    cleanups.push(() => store.close());
    const { port } = await startHttps(store);
    expect(await served(port)).toBe(fingerprint(first.cert));

    const slow = get(port, "/slow");
    await Bun.sleep(250); // the slow response is under way
    replace(paths.keyPath, second.key); // key first, as tools do: the pair is mismatched for a moment
    replace(paths.certPath, second.cert);
    await next(() => reloads.length === 1);

    expect(reloads).toEqual([fingerprint(second.cert)]);
    expect(store.current.cert).toBe(second.cert);
    expect(await served(port)).toBe(fingerprint(second.cert));
    expect(await served(port)).toBe(fingerprint(second.cert));
    const finished = await slow;
    expect(finished).toEqual({ body: "xxxxxxxxxx", complete: true, fingerprint: fingerprint(first.cert) });
    const plain = await get(port, "/");
    expect(plain.body).toBe("ok");
    expect(plain.fingerprint).toBe(fingerprint(second.cert));
  });

  test("a keep-alive client reconnects after a swap and sees the new certificate", async () => {
    const paths = certDir(first);
    const { store, reloads, next } = openStore(paths);
    cleanups.push(() => store.close());
    const { port } = await startHttps(store);
    const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
    cleanups.push(() => agent.destroy());
    expect((await get(port, "/", agent)).fingerprint).toBe(fingerprint(first.cert));
    replace(paths.keyPath, second.key);
    replace(paths.certPath, second.cert);
    await next(() => reloads.length === 1);
    // The swap closes idle keep-alive connections, as a graceful shutdown does. A request sent on
    // one at that very instant sees a reset (Go's transport, in docker and containerd, retries
    // GET/HEAD by itself; Node's agent does not), so give the agent the moment to see the close.
    await Bun.sleep(50);
    const after = await get(port, "/", agent);
    expect(after.body).toBe("ok");
    expect(after.fingerprint).toBe(fingerprint(second.cert));
  });

  test("broken, mismatched or expired material is rejected and the old certificate keeps serving", async () => {
    const paths = certDir(first);
    const { store, reloads, errors, next } = openStore(paths);
    cleanups.push(() => store.close());
    const { port } = await startHttps(store);

    replace(paths.certPath, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
    await next(() => errors.length === 1);
    expect(errors[0]!.message).toContain("tls.cert_path");

    replace(paths.certPath, second.cert); // with first's key still in place
    await next(() => errors.length === 2);
    expect(errors[1]!.message).toContain("is not the key of the certificate");

    replace(paths.keyPath, expired.key);
    replace(paths.certPath, expired.cert);
    await next(() => errors.length === 3);
    expect(errors[2]!.message).toContain("expired");

    expect(reloads).toEqual([]);
    expect(store.current).toEqual(first);
    expect(await served(port)).toBe(fingerprint(first.cert));
    // A rejected file is reported once, not at every event or poll.
    expect(store.reload()).toBe("rejected");
    expect(errors.length).toBe(4);
    await Bun.sleep(300);
    expect(errors.length).toBe(4);

    // Fixing the files recovers without a restart.
    replace(paths.keyPath, second.key);
    replace(paths.certPath, second.cert);
    await next(() => reloads.length === 1);
    expect(await served(port)).toBe(fingerprint(second.cert));
  });

  test("reload() reads the files on demand (SIGHUP), without watching or polling", async () => {
    const paths = certDir(first);
    const { store, reloads } = openStore({ ...paths, watch: false, pollMs: 0 });
    cleanups.push(() => store.close());
    const { port } = await startHttps(store);
    replace(paths.keyPath, second.key);
    replace(paths.certPath, second.cert);
    await Bun.sleep(300);
    expect(reloads).toEqual([]); // nothing noticed by itself
    expect(store.reload()).toBe("reloaded");
    expect(store.reload()).toBe("unchanged");
    // applyCertificate runs asynchronously after the swap: give it its listen().
    await Bun.sleep(100);
    expect(await served(port)).toBe(fingerprint(second.cert));
  });

  test("polling notices a change that no watch event reported", async () => {
    const paths = certDir(first);
    const { store, reloads, next } = openStore({ ...paths, watch: false, pollMs: 100 });
    cleanups.push(() => store.close());
    replace(paths.keyPath, second.key);
    replace(paths.certPath, second.cert);
    await next(() => reloads.length === 1);
    expect(store.current).toEqual(second);
  });

  test("open() refuses a key that does not belong to the certificate", () => {
    const paths = certDir({ cert: first.cert, key: second.key });
    expect(() => CertificateStore.open(paths)).toThrow(/is not the key of the certificate/);
  });

  test("a server closed for good is let go; the store goes on without it", async () => {
    const paths = certDir(first);
    const { store, reloads, errors, next } = openStore(paths);
    cleanups.push(() => store.close());
    const { server } = await startHttps(store);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    replace(paths.keyPath, second.key);
    replace(paths.certPath, second.cert);
    await next(() => reloads.length === 1);
    await Bun.sleep(100);
    expect(server.listening).toBe(false); // not reopened by the swap
    expect(errors).toEqual([]);
  });
});

/** A self-signed certificate that expired in 2020 (`openssl req -x509` cannot date one in the past; `openssl ca` can). */
async function expiredCert(): Promise<TlsFiles> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-expired-"));
  removeAtExit(dir);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "01\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n",
  );
  const run = async (args: string[]) => {
    const child = Bun.spawn(["openssl", ...args], { cwd: dir, stdout: "ignore", stderr: "pipe" });
    if ((await child.exited) !== 0) throw new Error(`openssl ${args[0]} failed: ${await new Response(child.stderr).text()}`);
  };
  await run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=127.0.0.1"]);
  await run(["ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in", "req.csr", "-out", "cert.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext"]);
  return { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") };
}

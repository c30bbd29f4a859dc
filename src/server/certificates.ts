/**
 * The HTTPS certificate, from files or from an ACME CA, kept current while
 * docxy runs: file edits and SIGHUP reload it (CertificateStore), and ACME
 * renews it before it expires. Static files are checked before anything
 * listens, so a bad one is a configuration error, not a broken listener.
 *
 * Tested through the binary (files, SIGHUP, ACME against Pebble): tests/integration/server/certificates.test.ts.
 */
import { resolve } from "node:path";
import type { Config } from "../config/schema";
import type { Logger } from "../observability/logger";
import { AcmeManager } from "./acme/manager";
import { CertificateStore, type ReloadResult } from "./tls-store";

export interface Certificates {
  /** Called once the HTTP port listens: ACME validates through it. */
  store(): Promise<CertificateStore | undefined>;
  /** HTTP-01 answers, when ACME is on. */
  challenges?: (token: string) => string | undefined;
  reload(): ReloadResult | "none";
  close(): void;
}

export function prepareCertificates(config: Config, log: Logger): Certificates {
  const tls = config.tls;
  if (!config.server.https_enabled || !tls) return { store: async () => undefined, reload: () => "none", close: () => {} };
  const open = (certPath: string, keyPath: string) =>
    CertificateStore.open({
      certPath,
      keyPath,
      onReload: (_files, certificate) => log.info("certificate reloaded", { subject: certificate.subject, valid_to: certificate.validTo }),
      onError: (error) => log.error("certificate not applied, the previous one keeps serving", { error: error.message }),
    });

  if (tls.acme_domains.length === 0) {
    const store = open(tls.cert_path, tls.key_path); // throws on a bad file: the caller exits with code 2
    return { store: async () => store, reload: () => store.reload(), close: () => store.close() };
  }

  let store: CertificateStore | undefined;
  const acme = new AcmeManager({
    directoryUrl: tls.acme_directory,
    names: tls.acme_domains,
    email: tls.acme_email || undefined,
    dir: resolve(tls.acme_dir),
    caRootPath: tls.acme_ca_root || undefined,
    onCertificate: () => store?.reload(),
    log,
  });
  return {
    challenges: acme.challengeResponse,
    async store() {
      log.info("ACME certificate", { names: tls.acme_domains.join(","), result: await acme.ensureCertificate() });
      store = open(acme.certPath, acme.keyPath);
      acme.start();
      return store;
    },
    reload: () => store?.reload() ?? "none",
    close() {
      acme.stop();
      store?.close();
    },
  };
}

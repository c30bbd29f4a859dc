/**
 * What the ACME client keeps on disk, in one directory (`[tls] acme_dir`):
 *
 *   account.key   the ACME account's private key (EC P-256), created once
 *   cert.pem      the certificate chain, leaf first: what HTTPS serves
 *   key.pem       the certificate's private key
 *   cert.json     which CA directory issued it, for which names
 *
 * Keys are written 0600 in a 0700 directory. Each file is replaced by
 * rename, so a reader (or a crash) never sees half a file; key.pem goes
 * before cert.pem, and a certificate whose key does not match is treated as
 * missing (reissued), which covers a crash between the two renames.
 *
 * Tested against a real ACME CA (Pebble), across a restart: tests/server/acme/pebble.test.ts.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface StoredCertificate {
  cert: string;
  key: string;
  certificate: X509Certificate;
  /** The ACME directory URL that issued it (from cert.json), if known. */
  directoryUrl: string | undefined;
}

export class AcmeStorage {
  readonly accountKeyPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly metaPath: string;

  constructor(readonly dir: string) {
    this.accountKeyPath = join(dir, "account.key");
    this.certPath = join(dir, "cert.pem");
    this.keyPath = join(dir, "key.pem");
    this.metaPath = join(dir, "cert.json");
  }

  /** The account key, or undefined when there is none yet. */
  readAccountKey(): string | undefined {
    return readOptional(this.accountKeyPath);
  }

  writeAccountKey(pem: string): void {
    this.#ensureDir();
    writeAtomic(this.accountKeyPath, pem, 0o600);
  }

  /** The stored certificate when it is complete and consistent; undefined otherwise. */
  readCertificate(): StoredCertificate | undefined {
    const cert = readOptional(this.certPath);
    const key = readOptional(this.keyPath);
    if (cert === undefined || key === undefined) return undefined;
    try {
      const certificate = new X509Certificate(cert);
      if (!certificate.checkPrivateKey(createPrivateKey(key))) return undefined;
      return { cert, key, certificate, directoryUrl: readMeta(this.metaPath)?.directoryUrl };
    } catch {
      return undefined; // unreadable: issue a new one
    }
  }

  writeCertificate(cert: string, key: string, meta: { directoryUrl: string; names: string[] }): void {
    this.#ensureDir();
    writeAtomic(this.keyPath, key, 0o600);
    writeAtomic(this.certPath, cert, 0o644);
    writeAtomic(this.metaPath, `${JSON.stringify({ ...meta, issuedAt: new Date().toISOString() }, null, 2)}\n`, 0o644);
  }

  #ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function readMeta(path: string): { directoryUrl?: string } | undefined {
  try {
    const meta = JSON.parse(readOptional(path) ?? "null") as unknown;
    return meta && typeof meta === "object" ? (meta as { directoryUrl?: string }) : undefined;
  } catch {
    return undefined;
  }
}

function writeAtomic(path: string, content: string, mode: number): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content, { mode });
  chmodSync(temp, mode); // the umask may have taken bits away from `mode`; 0644 must stay readable
  renameSync(temp, path);
}

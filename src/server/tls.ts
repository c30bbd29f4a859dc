/**
 * Certificate and key for the HTTPS listener, checked at startup so that a
 * bad file is a clear error instead of a listener that fails each handshake
 * (Wharf kept running with only its redirect port in that case, §6.2).
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

export interface TlsFiles {
  cert: string;
  key: string;
}

export function loadTls(certPath: string, keyPath: string): TlsFiles {
  const cert = read(certPath, "tls.cert_path");
  const key = read(keyPath, "tls.key_path");
  try {
    new X509Certificate(cert);
  } catch (error) {
    throw new Error(`tls.cert_path: ${certPath} is not a PEM certificate (${(error as Error).message})`);
  }
  try {
    createPrivateKey(key); // RSA (PKCS#1/PKCS#8) and EC (SEC1/PKCS#8) PEM
  } catch (error) {
    throw new Error(`tls.key_path: ${keyPath} is not a PEM private key (${(error as Error).message})`);
  }
  return { cert, key };
}

function read(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`${key}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

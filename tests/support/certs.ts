/** Self-signed certificates for HTTPS tests, made with the openssl CLI (always on Debian). */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeAtExit } from "./cleanup";

export interface CertFiles {
  cert: string;
  key: string;
}

export async function selfSignedCert(kind: "ec" | "rsa", commonName = "127.0.0.1"): Promise<CertFiles> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-cert-"));
  removeAtExit(dir);
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const keyArgs = kind === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["-newkey", "rsa:2048"];
  const child = Bun.spawn(
    ["openssl", "req", "-x509", ...keyArgs, "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${commonName}`, "-addext", `subjectAltName=IP:${commonName}`],
    { stdout: "ignore", stderr: "pipe" },
  );
  if ((await child.exited) !== 0) throw new Error(`openssl failed: ${await new Response(child.stderr).text()}`);
  return { cert, key };
}

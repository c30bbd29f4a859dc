// ES256 JWTs in the one shape distribution 2.8 accepts (protocol.md §6.2): header with `x5c`
// (not `kid`, whose libtrust format 2.8 wants and v3 no longer uses), `aud` as a string,
// and a raw r||s signature (JOSE), not the DER signature node:crypto produces by default.
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SigningKey {
  key: KeyObject;
  /** PEM of the self-signed certificate: the registry's `rootcertbundle` */
  certPem: string;
  /** base64 (standard, not url) DER of the certificate, as the `x5c` header wants it */
  certDer: string;
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenClaims {
  issuer: string;
  subject: string; // "" for anonymous, like Docker Hub
  audience: string;
  access: Access[];
  lifetimeSeconds: number;
}

let cached: SigningKey | undefined;

/**
 * One P-256 key and self-signed certificate per process. node:crypto can make keys but not
 * certificates, so the openssl CLI does both (it is on every Debian machine).
 */
export function signingKey(): SigningKey {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "docxy-jwt-"));
  try {
    const keyFile = join(dir, "key.pem");
    const certFile = join(dir, "cert.pem");
    const out = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", keyFile, "-out", certFile, "-days", "30", "-subj", "/CN=docxy-test-token-issuer"],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (out.exitCode !== 0) throw new Error(`openssl failed: ${out.stderr.toString()}`);
    const certPem = readFileSync(certFile, "utf8");
    cached = {
      key: createPrivateKey(readFileSync(keyFile)),
      certPem,
      certDer: new X509Certificate(certPem).raw.toString("base64"),
    };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const b64url = (data: string | Uint8Array): string => Buffer.from(data).toString("base64url");

export function signToken(k: SigningKey, c: TokenClaims): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: "JWT", alg: "ES256", x5c: [k.certDer] };
  const claims = {
    iss: c.issuer,
    sub: c.subject,
    aud: c.audience, // a string: 2.8 rejects an array
    exp: now + c.lifetimeSeconds,
    nbf: now,
    iat: now,
    jti: randomUUID(),
    access: c.access,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign("sha256", Buffer.from(input), { key: k.key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64url(signature)}`;
}

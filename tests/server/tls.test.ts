import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTls } from "../../src/server/tls";
import { selfSignedCert } from "../support/certs";
import { removeAtExit } from "../support/cleanup";

const dir = mkdtempSync(join(tmpdir(), "docxy-tls-"));
removeAtExit(dir);

test("a PEM certificate and key, RSA or EC, load as they are", async () => {
  for (const kind of ["ec", "rsa"] as const) {
    const { cert, key } = await selfSignedCert(kind);
    expect(loadTls(cert, key)).toEqual({ cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") });
  }
});

test("a missing or malformed file is an error naming the key and the path", async () => {
  const { cert, key } = await selfSignedCert("ec");
  const garbage = join(dir, "garbage.pem");
  writeFileSync(garbage, "not pem");
  expect(() => loadTls(join(dir, "missing.pem"), key)).toThrow(`tls.cert_path: cannot read ${join(dir, "missing.pem")} (ENOENT)`);
  expect(() => loadTls(garbage, key)).toThrow(`tls.cert_path: ${garbage} is not a PEM certificate`);
  expect(() => loadTls(cert, garbage)).toThrow(`tls.key_path: ${garbage} is not a PEM private key`);
});

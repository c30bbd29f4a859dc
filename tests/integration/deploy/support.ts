/**
 * What the deploy tests share: the image's facts the manifests rely on, rendering the manifests as
 * users apply them, and asking the binary what it makes of a configuration and its environment.
 */
import { expect } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { removeAtExit } from "../../support/cleanup";
import { DOCXY_BIN, ensureBinary } from "../../support/docxy-process";

export const ROOT = resolve(import.meta.dir, "../../..");

/** As scripts/image.ts builds the image: the entrypoint, the user, and the environment it sets. */
export const IMAGE = {
  binary: "/usr/local/bin/docxy",
  uid: 10001,
  state: "/var/lib/docxy",
  env: { DOCXY_CONFIG: "/etc/docxy/docxy.toml", DOCXY_CACHE_DIR: "/var/lib/docxy/cache" },
};

/** Per test: each runs docxy or docker-compose a few to a dozen times, a few seconds on a busy machine. */
export const BUDGET = 60_000;

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "docxy-deploy-"));
  removeAtExit(dir);
  return dir;
}

export interface Checked {
  code: number;
  stdout: string;
  stderr: string;
}

/** `docxy check-config` with exactly this environment: the config file comes from DOCXY_CONFIG. */
export async function checkConfig(env: Record<string, string>): Promise<Checked> {
  await ensureBinary();
  const child = Bun.spawn([DOCXY_BIN, "check-config"], { env: { PATH: process.env.PATH ?? "", NO_PROXY: "*", ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

/**
 * Shows that docxy reads each DOCXY_* variable of `names` under that name: with the variable set to
 * "" in `env`, check-config must fail and name the key the variable spells (DOCXY_CACHE_S3_BUCKET →
 * cache.s3.bucket). A misspelt name would be ignored by docxy and change nothing. Each variable
 * the deploy files set is required or typed, so "" is never valid for it. DOCXY_CONFIG needs no
 * such run: check-config finds its file through it alone.
 */
export async function expectEachVariableRead(env: Record<string, string>, names: string[]): Promise<void> {
  const read = names.filter((name) => name.startsWith("DOCXY_") && name !== "DOCXY_CONFIG");
  expect(read.length).toBeGreaterThan(0);
  for (const name of read) {
    const result = await checkConfig({ ...env, [name]: "" });
    const keys = [...result.stderr.matchAll(/invalid configuration: [^:]+: ([\w.]+):/g)].map((m) => m[1]!);
    expect({ name, code: result.code, read: keys.some((key) => `DOCXY_${key.replaceAll(".", "_").toUpperCase()}` === name) }).toEqual({
      name,
      code: 2,
      read: true,
    });
  }
}

/**
 * skopeo (Debian's, containers/image 5.23) as a real client. It tries HTTPS
 * first even with --tls-verify=false, so every call also exercises the
 * plain-HTTP port's tolerance of a TLS ClientHello.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SkopeoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** HOME is private so no user or system registries.conf/auth.json interferes (protocol.md §4.4). */
const home = mkdtempSync(join(tmpdir(), "docxy-skopeo-"));

export async function skopeo(...args: string[]): Promise<SkopeoResult> {
  const child = Bun.spawn(["skopeo", ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, NO_PROXY: "*" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

/** Like skopeo(), but fails the test with skopeo's own message. */
export async function skopeoOk(...args: string[]): Promise<string> {
  const result = await skopeo(...args);
  if (result.code !== 0) throw new Error(`skopeo ${args.join(" ")} failed (${result.code}):\n${result.stderr}`);
  return result.stdout;
}

export interface CopyResult {
  code: number;
  /** skopeo's last line of stderr: its error, when it failed */
  stderr: string | undefined;
  /** each file of the `dir:` copy (manifest.json, blobs by hex digest) → the sha256 of its bytes */
  files: Record<string, string> | undefined;
}

/** `skopeo copy docker://<host>/<ref> dir:…` over plain HTTP (with `creds`, `user:password`, when given), then the copied files' digests. */
export async function skopeoCopy(host: string, ref: string, all = false, creds?: string): Promise<CopyResult> {
  const dir = join(mkdtempSync(join(tmpdir(), "docxy-skopeo-copy-")), "out");
  try {
    const login = creds ? [`--src-creds=${creds}`] : [];
    const result = await skopeo("copy", ...(all ? ["--all"] : []), ...login, "--src-tls-verify=false", `docker://${host}/${ref}`, `dir:${dir}`);
    const digest = (f: string) => `sha256:${new Bun.CryptoHasher("sha256").update(readFileSync(join(dir, f))).digest("hex")}`;
    const files = result.code === 0 ? Object.fromEntries(readdirSync(dir).map((f) => [f, digest(f)])) : undefined;
    return { code: result.code, stderr: result.stderr.trim().split("\n").at(-1), files };
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
}

/** Like skopeoCopy(), but fails the test with skopeo's own message. */
export async function skopeoCopyOk(host: string, ref: string, all = false, creds?: string): Promise<Record<string, string>> {
  const result = await skopeoCopy(host, ref, all, creds);
  if (!result.files) throw new Error(`skopeo copy ${ref} failed (${result.code}): ${result.stderr}`);
  return result.files;
}

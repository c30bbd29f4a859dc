/**
 * skopeo (Debian's, containers/image 5.23) as a real client. It tries HTTPS
 * first even with --tls-verify=false, so every call also exercises the
 * plain-HTTP port's tolerance of a TLS ClientHello.
 */
import { mkdtempSync } from "node:fs";
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

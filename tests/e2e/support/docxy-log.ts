/**
 * What docxy itself saw: its access log lines (one JSON object per request), so the
 * suite can show that a client's pull really went through docxy and not around it, and the
 * health endpoint that must survive every client's first TLS attempt on the plain-HTTP port
 * (protocol.md fact 17: docker, podman, buildah and skopeo say ClientHello first).
 */
import type { ProxiedUpstream } from "../../support/proxied-upstream";

export interface AccessLine {
  method: string;
  path: string;
  /** the query string docxy logs for registry API requests (e.g. `ns=docker.io`), or "" */
  query: string;
  status: number;
}

/** docxy's JSON access lines (`{"msg":"request","method":…,"path":…,"query":…,"status":…}`). */
export function accessLines(log: string): AccessLine[] {
  return log
    .split("\n")
    .filter((line) => line.startsWith("{") && line.includes('"msg":"request"'))
    .map((line) => JSON.parse(line) as { method: string; path: string; query?: string; status: number })
    .map((entry) => ({ method: entry.method, path: entry.path, query: entry.query ?? "", status: entry.status }));
}

/** Access lines logged after `mark` characters of the log (take the mark with `env.docxy.log().length`). */
export function accessLinesSince(env: ProxiedUpstream, mark: number): AccessLine[] {
  return accessLines(env.docxy.log().slice(mark));
}

/**
 * Blob digests a pull fetched through the sendfile port, sorted: those the
 * proxy port answered with a 307, and those the sendfile port then sent.
 */
export function sendfileTrips(lines: AccessLine[]): { redirected: string[]; sent: string[] } {
  const digestOf = (path: string) => path.slice(path.lastIndexOf("/") + 1);
  return {
    redirected: lines.filter((l) => l.path.startsWith("/v2/") && l.path.includes("/blobs/") && l.status === 307).map((l) => digestOf(l.path)).sort(),
    sent: lines.filter((l) => l.path.startsWith("/blobs/") && l.status === 200).map((l) => digestOf(l.path)).sort(),
  };
}

/** `METHOD path status` strings, for readable `toContain` assertions. */
export const summary = (lines: AccessLine[]): string[] => lines.map((l) => `${l.method} ${l.path} ${l.status}`);

/** docxy's health endpoint still answers 204 (checked after each client's pulls). */
export async function generate204Status(env: ProxiedUpstream): Promise<number> {
  const response = await fetch(`${env.docxy.url}/generate_204`, { signal: AbortSignal.timeout(5000) });
  await response.arrayBuffer();
  return response.status;
}

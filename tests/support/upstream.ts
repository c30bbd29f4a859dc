// A real Docker-Hub-like upstream for integration tests, on loopback ports of its own:
// docker-registry 2.8 with token auth (token-server.ts, like auth.docker.io) whose blob GETs
// answer 307 to a CDN that refuses Authorization (cdn.ts, like production.cloudflare.docker.com),
// pre-seeded with the test images (images.ts).
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeAtExit } from "./cleanup";
import { startCdn, type Cdn, type CdnRequestRecord } from "./cdn";
import type { TestImages } from "./images";
import { signingKey } from "./jwt";
import { startRegistry, type RegistryProcess } from "./registry";
import { template } from "./seed";
import { startTokenServer, type TokenRequestRecord, type TokenServer } from "./token-server";

export { freePort } from "./ports";
export type { CdnRequestRecord } from "./cdn";
export type { TokenRequestRecord } from "./token-server";
export type { TestImage, TestImages, ManifestInfo, IndexInfo, Descriptor, Layer, Platform } from "./images";
export { MediaType, blobPath } from "./images";

export interface StartOptions {
  service?: string;
  users?: Record<string, string>;
  bigLayer?: boolean;
  /**
   * Serve the token service and the CDN only to docxy (by its User-Agent), as in the networks
   * docxy is for, where clients cannot reach auth.docker.io or the CDN: a client that is sent
   * there instead of through docxy fails.
   */
  onlyThroughProxy?: boolean;
}

const PROXY_AGENT = /^docxy\//;

export interface Upstream {
  registryUrl: string; // "http://127.0.0.1:PORT" (token auth + 307 to CDN)
  realm: string; // token server URL, e.g. "http://127.0.0.1:PORT/token"
  service: string; // default "test-registry"
  cdnUrl: string;
  rootDir: string;
  images: TestImages;
  tokenLog: TokenRequestRecord[];
  cdnLog: CdnRequestRecord[];
  /** the registry's stdout+stderr (config next to it), for debugging a failing test */
  registryLog: string;
  /**
   * A bearer token straight from the token server's signer, under the same grant policy as
   * /token, without an HTTP request (so it does not show up in tokenLog). `scope` is a full
   * scope ("repository:acme/app:pull") or a bare repository name, meaning its pull scope.
   */
  token(scope: string, user?: string): Promise<string>;
  stop(): Promise<void>;
}

export const ISSUER = "docxy-test-issuer";

export async function startUpstream(options: StartOptions = {}): Promise<Upstream> {
  const service = options.service ?? "test-registry";
  const users = options.users ?? { alice: "secret" };
  const seeded = await template(options.bigLayer ?? false);

  const workDir = await mkdtemp(join(tmpdir(), "docxy-upstream-"));
  if (!process.env.DOCXY_KEEP_UPSTREAM) removeAtExit(workDir); // in case stop() is never called
  const rootDir = join(workDir, "root");
  let tokens: TokenServer | undefined;
  let cdn: Cdn | undefined;
  let registry: RegistryProcess | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await registry?.stop();
    await Promise.all([tokens?.stop(), cdn?.stop()]);
    if (!process.env.DOCXY_KEEP_UPSTREAM) await rm(workDir, { recursive: true, force: true });
  };

  try {
    for (const root of seeded.roots) await cp(root, rootDir, { recursive: true });
    const certFile = join(workDir, "token-cert.pem");
    await writeFile(certFile, signingKey().certPem);
    const allowedAgents = options.onlyThroughProxy ? PROXY_AGENT : undefined;
    tokens = startTokenServer({ service, issuer: ISSUER, users, allowedAgents });
    cdn = startCdn(rootDir, allowedAgents);
    registry = await startRegistry({
      name: "registry",
      workDir,
      rootDir,
      auth: { realm: tokens.realm, service, issuer: ISSUER, rootCertBundle: certFile },
      redirectTo: cdn.url,
    });
  } catch (err) {
    await stop();
    throw err;
  }

  const signer = tokens;
  return {
    registryUrl: registry.url,
    realm: tokens.realm,
    service,
    cdnUrl: cdn.url,
    rootDir,
    images: seeded.images,
    tokenLog: tokens.log,
    cdnLog: cdn.log,
    registryLog: registry.logFile,
    async token(scope, user) {
      if (user !== undefined && !Object.hasOwn(users, user)) throw new Error(`unknown user ${user}`);
      return signer.mint([scope.includes(":") ? scope : `repository:${scope}:pull`], user);
    },
    stop,
  };
}

/** docxy's `[registry]` section pointing its default upstream (Docker Hub's slot) at `upstream`. */
export function registryToml(upstream: Upstream): string {
  return `[registry]\n${upstreamKeysToml(upstream)}`;
}

/** A `[[registry.upstreams]]` entry named `name` (a built-in one by default) pointing at `upstream`. */
export function upstreamEntryToml(upstream: Upstream, name = "dockerhub", extra = ""): string {
  return `[[registry.upstreams]]\nname = "${name}"\n${upstreamKeysToml(upstream)}${extra}`;
}

function upstreamKeysToml(upstream: Upstream): string {
  return `upstream_registry = "${upstream.registryUrl}"\nauth_realm = "${upstream.realm}"\nauth_service = "${upstream.service}"\n`;
}

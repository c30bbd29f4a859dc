/**
 * The benchmark's world on loopback: the tests' real upstream (distribution
 * 2.8 + token server + CDN, seeded with the test images) plus one image of
 * our own, `bench/big:v1`, whose single layer is the big blob (1 GiB of
 * incompressible bytes by default) pushed into that upstream; and nginx.
 * A second registry on the same storage and token service redirects blob
 * GETs to nginx holding each download to a WAN rate instead of the CDN: an
 * upstream that is slower than the box, as Docker Hub is.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { removeAtExit } from "../../tests/support/cleanup";
import { MediaType, blobPath } from "../../tests/support/images";
import { bigLayer } from "../../tests/support/layers";
import { pushRepo } from "../../tests/support/push";
import { startRegistry, type RegistryProcess } from "../../tests/support/registry";
import { ISSUER, startUpstream, type Upstream } from "../../tests/support/upstream";
import { startNginx, type Nginx } from "./nginx";

export interface BigBlob {
  repository: string;
  tag: string;
  digest: string;
  size: number;
  /** the blob's path on the CDN (and under the upstream's root) */
  cdnPath: string;
  /** the file itself, in the upstream's storage */
  file: string;
}

export interface World {
  upstream: Upstream;
  nginx: Nginx;
  big: BigBlob;
  /** the same upstream behind a WAN-rate CDN (see above), and a smaller blob for it (bench/wan:v1) */
  wan: { registryUrl: string; rate: number; blob: BigBlob; gets(digest: string): number };
  /** GETs of `digest` the CDN has answered so far (each one is an upstream fetch) */
  cdnGets(digest: string): number;
  /** a Bearer header straight from the upstream's token server */
  upstreamToken(repository: string): Promise<string>;
  stop(): Promise<void>;
}

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function pushBigImage(upstream: Upstream, bytes: number, repository: string): Promise<BigBlob> {
  const tag = "v1";
  const dir = mkdtempSync(join(tmpdir(), "docxy-bench-layer-"));
  removeAtExit(dir);
  try {
    const layer = await bigLayer(join(dir, "layer.tar.gz"), bytes);
    const encoder = new TextEncoder();
    const config = encoder.encode(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Cmd: ["/bin/sh"] },
        rootfs: { type: "layers", diff_ids: [layer.diffId] },
        history: [{ created: "2024-01-01T00:00:00Z", created_by: "docxy bench layer" }],
      }),
    );
    const manifest = encoder.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: { mediaType: MediaType.dockerConfig, digest: sha256(config), size: config.length },
        layers: [{ mediaType: MediaType.dockerLayer, digest: layer.digest, size: layer.size }],
      }),
    );
    const auth = { authorization: `Bearer ${await upstream.token(`repository:${repository}:pull,push`, "alice")}` };
    await pushRepo(
      upstream.registryUrl,
      {
        repository,
        blobs: [{ digest: sha256(config), size: config.length, data: config }, layer],
        manifests: [{ reference: tag, mediaType: MediaType.dockerManifest, digest: sha256(manifest), bytes: manifest }],
      },
      auth,
    );
    const file = blobPath(upstream.rootDir, layer.digest);
    return { repository, tag, digest: layer.digest, size: layer.size, file, cdnPath: file.slice(upstream.rootDir.length) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `wanRate`: bytes/s of each download from the WAN-rate CDN. */
export async function startWorld(bigBytes: number, wanBytes: number, wanRate: number): Promise<World> {
  const upstream = await startUpstream();
  let nginx: Nginx | undefined;
  let wanRegistry: RegistryProcess | undefined;
  try {
    const big = await pushBigImage(upstream, bigBytes, "bench/big");
    // Same generator: when the sizes match, so do the bytes and the digest (then one blob, two names).
    const wanBlob = await pushBigImage(upstream, wanBytes, "bench/wan");
    nginx = await startNginx(upstream.rootDir, upstream.cdnUrl, wanRate);
    const n = nginx;
    const workDir = mkdtempSync(join(tmpdir(), "docxy-bench-wan-"));
    removeAtExit(workDir);
    wanRegistry = await startRegistry({
      name: "wan",
      workDir,
      rootDir: upstream.rootDir, // two registries can share one storage root
      // tests/support/upstream.ts writes the token server's certificate next to the root
      auth: { realm: upstream.realm, service: upstream.service, issuer: ISSUER, rootCertBundle: join(dirname(upstream.rootDir), "token-cert.pem") },
      redirectTo: n.wanCdnUrl,
    });
    const wr = wanRegistry;
    const hex = (digest: string) => digest.replace(/^sha256:/, "");
    return {
      upstream,
      nginx: n,
      big,
      wan: { registryUrl: wr.url, rate: wanRate, blob: wanBlob, gets: (digest) => n.wanGets(hex(digest)) },
      cdnGets: (digest) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.includes(hex(digest))).length,
      upstreamToken: async (repository) => `Bearer ${await upstream.token(repository)}`,
      async stop() {
        await wr.stop();
        await n.stop();
        await upstream.stop();
        rmSync(workDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await wanRegistry?.stop();
    await nginx?.stop();
    await upstream.stop();
    throw err;
  }
}

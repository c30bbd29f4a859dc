/**
 * The soak's (8) pool of small images, pushed into the benchmark's upstream
 * before it starts: enough distinct ones that cold pulls keep happening for
 * the whole run, not just in its first minute. Images are spread over a few
 * repositories as releases of them (`soak/app-07:v3`); each repository's tags
 * share a base layer, as real releases do, and add layers of their own of
 * random, incompressible content whose sizes run from KiBs to a few MiB.
 */
import { createHash, randomBytes } from "node:crypto";
import { MediaType } from "../../tests/support/images";
import { smallLayer, type LayerBlob } from "../../tests/support/layers";
import { pushRepo, type BlobSource, type ManifestPush } from "../../tests/support/push";
import type { Upstream } from "../../tests/support/upstream";

export interface SoakImage {
  repository: string;
  tag: string;
  /** config first, then layers: every blob a pull fetches */
  blobs: { digest: string; size: number }[];
}

const REPOSITORIES = 30;
const OWN_LAYERS = 2;
const encoder = new TextEncoder();
const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** 8 KiB to 4 MiB, log-uniform: most layers small, a few large, as in real images. */
function randomLayer(): LayerBlob {
  const size = Math.round(8 * 1024 * 512 ** Math.random());
  return smallLayer([{ path: "data/" }, { path: "data/content.bin", content: randomBytes(size) }]);
}

function imageOf(repository: string, tag: string, layers: LayerBlob[]): { image: SoakImage; blobs: BlobSource[]; manifest: ManifestPush } {
  const config = encoder.encode(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"], Labels: { "org.docxy.bench": `${repository}:${tag}` } },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: "2024-01-01T00:00:00Z", created_by: "docxy bench soak layer" })),
    }),
  );
  const configBlob = { digest: sha256(config), size: config.length, data: config };
  const bytes = encoder.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, digest: configBlob.digest, size: configBlob.size },
      layers: layers.map((l) => ({ mediaType: MediaType.dockerLayer, digest: l.digest, size: l.size })),
    }),
  );
  const blobs = [configBlob, ...layers];
  return {
    image: { repository, tag, blobs: blobs.map(({ digest, size }) => ({ digest, size })) },
    blobs,
    manifest: { reference: tag, mediaType: MediaType.dockerManifest, digest: sha256(bytes), bytes },
  };
}

/** Pushes `count` images; returned in pull order, which visits every repository before its second tag. */
export async function pushSoakImages(upstream: Upstream, count: number): Promise<SoakImage[]> {
  const repos = Math.min(REPOSITORIES, count);
  const images: SoakImage[] = [];
  await Promise.all(
    Array.from({ length: repos }, async (_, r) => {
      const repository = `soak/app-${String(r).padStart(2, "0")}`;
      const base = randomLayer();
      const built = [];
      for (let i = r; i < count; i += repos) {
        const own = Array.from({ length: OWN_LAYERS }, randomLayer);
        built.push({ at: i, ...imageOf(repository, `v${Math.floor(i / repos) + 1}`, [base, ...own]) });
      }
      const auth = { authorization: `Bearer ${await upstream.token(`repository:${repository}:pull,push`, "alice")}` };
      // the base layer is in every tag: push it once
      const blobs = [...new Map(built.flatMap((b) => b.blobs).map((b) => [b.digest, b])).values()];
      await pushRepo(upstream.registryUrl, { repository, blobs, manifests: built.map((b) => b.manifest) }, auth);
      for (const b of built) images[b.at] = b.image;
    }),
  );
  return images;
}

// A tiny OCI distribution push client (monolithic blob upload + manifest PUT), enough to seed
// a registry. Also usable by tests that change the upstream mid-test (pass a Bearer header
// with push access, e.g. from upstream.token("repository:x:pull,push", "alice")).

export interface BlobSource {
  digest: string;
  size: number;
  data: Uint8Array | { path: string };
}

export interface ManifestPush {
  /** a tag, or the manifest's own digest (children of an index are pushed by digest first) */
  reference: string;
  mediaType: string;
  digest: string;
  bytes: Uint8Array<ArrayBuffer>;
}

export interface RepoContent {
  repository: string;
  blobs: BlobSource[];
  /** in push order: an index's children must exist before the index */
  manifests: ManifestPush[];
}

async function expectStatus(res: Response, want: number, what: string): Promise<Response> {
  if (res.status !== want) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

export async function pushBlob(registry: string, repo: string, blob: BlobSource, headers: Record<string, string> = {}): Promise<void> {
  const head = await fetch(`${registry}/v2/${repo}/blobs/${blob.digest}`, { method: "HEAD", headers, redirect: "manual" });
  if (head.status === 200 || head.status === 307) return; // already in this repository
  const started = await expectStatus(
    await fetch(`${registry}/v2/${repo}/blobs/uploads/`, { method: "POST", headers }),
    202,
    `start upload to ${repo}`,
  );
  await started.arrayBuffer();
  const location = new URL(started.headers.get("location") ?? "", registry);
  location.searchParams.set("digest", blob.digest);
  // A Bun.file body streams from disk, so a 256 MiB layer is never held in memory.
  const body = blob.data instanceof Uint8Array ? blob.data : Bun.file(blob.data.path);
  const done = await fetch(location, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/octet-stream", "content-length": String(blob.size) },
    body,
  });
  await (await expectStatus(done, 201, `upload ${blob.digest} to ${repo}`)).arrayBuffer();
}

export async function pushManifest(registry: string, repo: string, m: ManifestPush, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${registry}/v2/${repo}/manifests/${m.reference}`, {
    method: "PUT",
    headers: { ...headers, "content-type": m.mediaType },
    body: m.bytes,
  });
  await (await expectStatus(res, 201, `put manifest ${repo}:${m.reference}`)).arrayBuffer();
  const digest = res.headers.get("docker-content-digest");
  if (digest !== m.digest) throw new Error(`registry computed ${digest} for ${repo}:${m.reference}, expected ${m.digest}`);
}

/** Run `fn` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function pushRepo(registry: string, content: RepoContent, headers: Record<string, string> = {}): Promise<void> {
  await eachLimited(content.blobs, 4, (b) => pushBlob(registry, content.repository, b, headers));
  // Digest references first (index children), then tags, which may point at them.
  const byDigest = content.manifests.filter((m) => m.reference.startsWith("sha256:"));
  const byTag = content.manifests.filter((m) => !m.reference.startsWith("sha256:"));
  for (const m of byDigest) await pushManifest(registry, content.repository, m, headers);
  await eachLimited(byTag, 8, (m) => pushManifest(registry, content.repository, m, headers));
}

/**
 * Deletes a manifest by digest, and with it every tag pointing at it (distribution deletes
 * those tags too); its blobs stay until a garbage collection. Needs a delete grant, e.g.
 * upstream.token("repository:x:delete", "alice").
 */
export async function deleteManifest(registry: string, repo: string, digest: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${registry}/v2/${repo}/manifests/${digest}`, { method: "DELETE", headers });
  await (await expectStatus(res, 202, `delete manifest ${repo}@${digest}`)).arrayBuffer();
}

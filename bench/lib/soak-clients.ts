/**
 * What the soak's (8) clients do to docxy, one request pattern each, as real
 * clients do it: a pull (the 401 challenge on /v2/, a token, the manifest by
 * tag, then config and layers three at a time, as Docker does), a client
 * that gives up mid-blob (Ctrl-C, a CI timeout), a Range read (containerd
 * resuming a layer), and manifest requests with no or a bad token. Every answer is
 * tallied by what it was; one that is not what a registry owes is tallied as
 * unexpected with the first few reasons kept, so an error does not stop the
 * soak but shows in its result.
 */
import { $ } from "bun";
import { MediaType } from "../../tests/support/images";
import { curlArgs, parseCurl } from "./curl";
import type { BenchDocxy } from "./docxy";
import type { SoakImage } from "./soak-images";

export class Tally {
  readonly counts: Record<string, number> = {};
  readonly reasons: string[] = [];

  add(what: string, n = 1): void {
    this.counts[what] = (this.counts[what] ?? 0) + n;
  }

  unexpected(reason: string, n = 1): void {
    this.add("unexpected", n);
    if (this.reasons.length < 5) this.reasons.push(reason);
  }

  get requests(): number {
    return Object.values(this.counts).reduce((s, n) => s + n, 0);
  }

  /** Runs `job`; a throw is an unexpected answer, not the end of the soak. */
  async guard(job: () => Promise<void>): Promise<void> {
    await job().catch((err: unknown) => this.unexpected(err instanceof Error ? err.message : String(err)));
  }
}

async function expectStatus(res: Response, status: number, what: string): Promise<ArrayBuffer> {
  const body = await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status}, expected ${status}`);
  return body;
}

/** A `docker pull` of `image`; `kind` ("cold pull", "warm pull") is what the tally counts it as. */
export async function pull(d: BenchDocxy, image: SoakImage, kind: string, tally: Tally): Promise<void> {
  await expectStatus(await fetch(`${d.url}/v2/`), 401, "GET /v2/ without a token");
  tally.add("401 challenge");
  const headers = { authorization: await d.token(image.repository), accept: MediaType.dockerManifest };
  await expectStatus(await fetch(`${d.url}/v2/${image.repository}/manifests/${image.tag}`, { headers }), 200, `manifest ${image.repository}:${image.tag}`);
  const queue = [...image.blobs];
  const worker = async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) {
      const body = await expectStatus(await fetch(`${d.url}/v2/${image.repository}/blobs/${blob.digest}`, { headers }), 200, `blob of ${image.repository}`);
      if (body.byteLength !== blob.size) throw new Error(`blob of ${image.repository}: ${body.byteLength} of ${blob.size} bytes`);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  tally.add(kind);
}

/** Reads `url` at 20 MB/s and hangs up after 1 s, long before the last byte of a big blob. */
export async function disconnectMidBlob(url: string, size: number, authorization: string, tally: Tally): Promise<void> {
  const out = await $`${curlArgs(url, { authorization, limitRate: "20M", maxTime: 1 })}`.quiet().nothrow();
  const r = parseCurl(out.stdout.toString());
  // exit 28 = --max-time reached: the client left mid-blob, which is the plan
  if (out.exitCode !== 28 || r.status !== 200 || r.bytes >= size) throw new Error(`mid-blob disconnect: exit ${out.exitCode}, HTTP ${r.status}, ${r.bytes} of ${size} bytes`);
  tally.add(`disconnect mid-blob (${r.headers["x-cache"] ?? "no X-Cache"})`);
}

/** A Range read of up to 1 MiB at a random offset of a blob. */
export async function rangeRead(url: string, size: number, authorization: string, tally: Tally): Promise<void> {
  const start = Math.floor(Math.random() * size);
  const end = Math.min(size, start + 2 ** 20) - 1;
  const res = await fetch(url, { headers: { authorization, range: `bytes=${start}-${end}` } });
  const body = await expectStatus(res, 206, `Range ${start}-${end}`);
  if (body.byteLength !== end - start + 1) throw new Error(`Range ${start}-${end}: ${body.byteLength} bytes`);
  tally.add("range");
}

/**
 * A manifest GET with no token, and one with a token docxy did not issue: both 401. (Not a blob:
 * docxy serves a cached blob of a public repository with no token at all.)
 */
export async function unauthorized(d: BenchDocxy, image: SoakImage, tally: Tally): Promise<void> {
  const url = `${d.url}/v2/${image.repository}/manifests/${image.tag}`;
  await expectStatus(await fetch(url), 401, "manifest without a token");
  await expectStatus(await fetch(url, { headers: { authorization: "Bearer not.a.token" } }), 401, "manifest with a forged token");
  tally.add("401 no or bad token", 2);
}

/**
 * Who may be served cached content of a repository.
 *
 * A blob or manifest fetched with one client's credentials (a private
 * repository) must never reach a client that has not proven access to it.
 * The model:
 * - A repository is *public* when docxy itself can pull it — anonymously, or
 *   with the upstream account the operator configured for clients without
 *   credentials (then the operator has chosen to share what it can read): docxy
 *   gets a pull token as itself and HEADs the content. The answer is kept in the cache index (and trusted for
 *   `PUBLIC_TTL`, or indefinitely while the upstream is unreachable, so
 *   cached public images keep working in an outage).
 * - Anyone is served cached content of a public repository.
 * - For any other repository the client proves access on every new token:
 *   docxy HEADs the same content upstream with the client's own
 *   Authorization (a HEAD is free against Docker Hub's quota; redirects are
 *   not followed). A success is remembered for `PROOF_TTL` per (token,
 *   repository); a refusal is relayed to the client as the upstream said it,
 *   with our challenge, so the client can log in and retry.
 */
import { RegistryError } from "../oci/errors";
import type { PullProxy, PullRequest } from "../proxy/pull-proxy";
import type { UpstreamAuth } from "../upstream/upstream-auth";
import { discard, type UpstreamClient } from "../upstream/client";
import type { Upstream } from "../upstream/table";
import type { CacheIndex } from "./cache-index";

const PUBLIC_TTL_MS = 60 * 60 * 1000;
const PROOF_TTL_MS = 60 * 1000;

export class AccessGate {
  private readonly proofs = new Map<string, number>();

  constructor(
    private readonly index: CacheIndex,
    private readonly client: UpstreamClient,
    private readonly upstreamAuth: UpstreamAuth,
    private readonly pull: PullProxy,
  ) {}

  /** undefined when `request` may be served cached content; otherwise the upstream's refusal, ready to send. */
  async check(request: PullRequest): Promise<Response | undefined> {
    const { upstream } = request.route;
    const repository = this.pull.upstreamName(request);
    if (await this.isPublic(upstream, repository, request)) return undefined;

    const authorization = request.headers.get("authorization");
    const key = authorization ? `${new Bun.CryptoHasher("sha256").update(authorization).digest("hex")} ${upstream.name}/${repository}` : undefined;
    const proven = key ? this.proofs.get(key) : undefined;
    if (proven !== undefined && Date.now() - proven < PROOF_TTL_MS) return undefined;

    const result = await this.pull.fetch(request, { method: "HEAD", withoutRange: true, followRedirects: false });
    const { status } = result.response;
    if (status < 400) {
      await discard(result.response);
      if (key) this.remember(key);
      return undefined;
    }
    return this.pull.relay({ ...request, method: "HEAD" }, result);
  }

  /** Whether docxy itself may pull `repository` anonymously, from the index or by asking upstream. */
  private async isPublic(upstream: Upstream, repository: string, request: PullRequest): Promise<boolean> {
    const known = this.index.getRepositoryAccess(upstream.name, repository);
    if (known && Date.now() - known.checkedAt < PUBLIC_TTL_MS) return known.public;
    try {
      const isPublic = await this.anonymousHead(upstream, repository, request);
      this.index.putRepositoryAccess(upstream.name, repository, isPublic);
      return isPublic;
    } catch (error) {
      if (error instanceof RegistryError && known) return known.public; // upstream down: trust what we knew
      if (error instanceof RegistryError) return false;
      throw error;
    }
  }

  private async anonymousHead(upstream: Upstream, repository: string, request: PullRequest): Promise<boolean> {
    const headers = new Headers({ accept: request.headers.get("accept") ?? "*/*" });
    const { header } = await this.upstreamAuth.authorize(upstream, repository, request.signal).catch((error: unknown) => {
      if (error instanceof RegistryError && error.ociCode === "DENIED") return { header: undefined };
      throw error;
    });
    if (header) headers.set("authorization", header);
    const reference = request.path.reference ?? "latest";
    const { response } = await this.client.send({
      method: "HEAD",
      url: `${upstream.url}/v2/${repository}/${request.path.kind}/${reference}`,
      headers,
      followRedirects: false,
      signal: request.signal,
    });
    await discard(response);
    if (response.status >= 500 || response.status === 429) {
      throw new RegistryError("UNAVAILABLE", `upstream ${upstream.name} answered ${response.status}`);
    }
    return response.status < 400;
  }

  private remember(key: string): void {
    const now = Date.now();
    this.proofs.set(key, now);
    if (this.proofs.size > 10_000) {
      for (const [k, at] of this.proofs) if (now - at >= PROOF_TTL_MS) this.proofs.delete(k);
    }
  }
}

/**
 * Who may be served cached content, and under which repository name.
 *
 * Content is keyed by digest alone, so two things are checked before a
 * client gets cached bytes for `<repository>/<digest>`:
 * 1. The digest really is in that repository upstream (a *link*). Links are
 *    recorded when content is fetched for a repository; any other pairing is
 *    checked with a HEAD upstream first — otherwise anyone could read a
 *    private blob by asking for its digest under a public repository's name.
 * 2. The client may read the repository:
 *    - A repository is *public* when docxy itself can read it — anonymously,
 *      or with the upstream account the operator configured for clients
 *      without credentials (the operator chose to share what it reads). That
 *      answer is kept in the index for PUBLIC_TTL, and for as long as the
 *      upstream is unreachable, so cached public images keep working in an
 *      outage. It is learnt in the background after each fetch, while the
 *      upstream is still answering.
 *    - For any other repository the client proves access with its own
 *      credentials: a HEAD of the same content upstream (free against Docker
 *      Hub's quota, redirects not followed), remembered for PROOF_TTL per
 *      (credentials, repository). While the token service is in trouble the
 *      client holds an offline token instead, which names the credentials it
 *      logged in with; a proof those credentials made before then counts
 *      (auth/credential-memory.ts). A refusal reaches the client as the
 *      upstream's answer, with our challenge, so it can log in and retry;
 *      a client without a token gets that challenge while the upstream is
 *      in trouble too.
 * With `[cache] keep_deleted`, content the upstream no longer has (a HEAD
 * of it answers a plain 404) stays readable from the cache, but only to those
 * who could read it before: it must be linked to the repository, and the
 * repository last known public or these credentials have proven access to it
 * before (CredentialMemory: within a day, while docxy runs). A 404 alone
 * proves nothing about the client: some registries answer 404 rather than
 * 401 for a private repository, to hide that it exists.
 * In a fleet (issue 16) what one node learnt of links, publicness and proofs
 * it tells the others (SharedKnowledge), and a node that does not know looks
 * there before asking the upstream, so N nodes cost the upstream about what
 * one does. A single node has NOTHING_SHARED: it looks only where it already
 * waits on the upstream.
 */
import type { CredentialMemory } from "../auth/credential-memory";
import { RegistryError } from "../oci/errors";
import { errorBody } from "../oci/responses";
import type { PullRequest } from "../proxy/pull-request";
import { discard } from "../upstream/client";
import type { CacheIndex, RepositoryAccess } from "./cache-index";
import type { Remote } from "./remote";
import { NOTHING_SHARED, type SharedKnowledge } from "./shared-knowledge";

const PUBLIC_TTL_MS = 60 * 60 * 1000;
const PROOF_TTL_MS = 60 * 1000;

export class AccessGate {
  private readonly proofs = new Map<string, number>();
  private readonly learning = new Set<string>();

  constructor(
    private readonly index: CacheIndex,
    private readonly remote: Remote,
    private readonly credentials: CredentialMemory,
    private readonly shared: SharedKnowledge = NOTHING_SHARED,
    private readonly keepDeleted = false,
  ) {}

  /** Whether the client holds one of docxy's offline tokens: the upstream cannot be asked on its behalf. */
  offline(request: PullRequest): boolean {
    return this.credentials.isOffline(request.headers.get("authorization"));
  }

  /**
   * undefined when `request` may be served the cached `digest`; otherwise the
   * upstream's refusal, ready to send. Throws when the upstream is needed to
   * decide and cannot be reached.
   */
  async check(request: PullRequest, digest: string): Promise<Response | undefined> {
    const { upstream } = request.route;
    const repository = this.remote.upstreamName(request);
    let linked = this.index.hasLink(upstream.name, repository, digest);
    let access = this.index.getRepositoryAccess(upstream.name, repository);
    if (linked && access?.public && fresh(access)) return undefined;
    if (!linked || !fresh(access)) {
      // What this node does not know another node may (a fleet): adopted rather than asked again upstream.
      [linked, access] = await Promise.all([
        linked || this.sharedLink(upstream.name, repository, digest),
        fresh(access) ? access : this.sharedAccess(upstream.name, repository, access),
      ]);
      if (linked && access?.public && fresh(access)) return undefined;
    }
    // An offline token is worth nothing upstream: docxy handed it out because the token service
    // is in trouble. What its credentials proved before decides, without asking (see credential-memory.ts).
    if (linked && this.credentials.provenBefore(request.headers.get("authorization"), `${upstream.name}/${repository}`)) return undefined;

    // Ask the upstream as docxy itself: proves the link and, if it can read it, publicness.
    let asDocxy;
    try {
      asDocxy = await this.remote.fetch({ ...request, identity: "proxy", method: "HEAD" }, headOf(digest));
    } catch (error) {
      if (error instanceof RegistryError && linked && access?.public) return undefined; // outage: trust what we knew
      if (error instanceof RegistryError && linked && !request.headers.has("authorization")) return this.challenge(request, repository);
      throw error;
    }
    const status = asDocxy.response.status;
    await discard(asDocxy.response);
    const trouble = status === 429 || status >= 500;
    if (trouble && linked && access?.public) return undefined; // as in an outage
    if (trouble && linked && !request.headers.has("authorization")) return this.challenge(request, repository);
    if (status < 400) {
      this.link(upstream.name, repository, digest);
      this.setAccess(upstream.name, repository, true);
      return undefined;
    }
    // Gone upstream, public when last known: what anyone could read then, the cache still holds.
    if (status === 404 && linked && access?.public && this.keepDeleted) return undefined;
    if (status === 401 || status === 403) this.setAccess(upstream.name, repository, false);
    // A refusal learnt from a HEAD: relay() gives a GET client the registry JSON the HEAD had not.
    if (status === 404 || request.identity === "proxy") return this.remote.relay(request, asDocxy);
    return this.clientProof(request, repository, digest, linked);
  }

  /**
   * Records what a fetch for `request` just showed: `digest` is in the
   * repository. Whether docxy itself may read the repository is learnt in the
   * background, while the upstream is still answering.
   */
  learn(request: PullRequest, digest: string): void {
    const { upstream } = request.route;
    const repository = this.remote.upstreamName(request);
    this.link(upstream.name, repository, digest);
    // The upstream just served this repository on the client's own credentials: a proof for them.
    if (request.identity === "client") this.credentials.proven(request.headers.get("authorization"), `${upstream.name}/${repository}`);
    const access = this.index.getRepositoryAccess(upstream.name, repository);
    const key = `${upstream.name}/${repository}`;
    if (fresh(access) || this.learning.has(key)) return;
    this.learning.add(key);
    void this.learnAccess(request, repository, digest, access)
      .catch(() => undefined)
      .finally(() => this.learning.delete(key));
  }

  /** Whether docxy itself may read the repository: the fleet's answer, or a HEAD upstream as docxy. */
  private async learnAccess(request: PullRequest, repository: string, digest: string, access: RepositoryAccess | undefined): Promise<void> {
    const { upstream } = request.route;
    if (fresh(await this.sharedAccess(upstream.name, repository, access))) return;
    const { response } = await this.remote.fetch({ ...request, identity: "proxy", method: "HEAD", signal: undefined }, headOf(digest));
    await discard(response);
    if (response.status < 400) this.setAccess(upstream.name, repository, true);
    else if (response.status === 401 || response.status === 403) this.setAccess(upstream.name, repository, false);
  }

  private link(upstream: string, repository: string, digest: string): void {
    this.index.putLink(upstream, repository, digest);
    this.shared.publishLink(upstream, repository, digest);
  }

  private setAccess(upstream: string, repository: string, isPublic: boolean): void {
    const access = { public: isPublic, checkedAt: Date.now() };
    this.index.putRepositoryAccess(upstream, repository, isPublic, access.checkedAt);
    this.shared.publishAccess(upstream, repository, access, PUBLIC_TTL_MS);
  }

  /** The fleet's link, adopted into the index. */
  private async sharedLink(upstream: string, repository: string, digest: string): Promise<boolean> {
    const linked = await this.shared.hasLink(upstream, repository, digest);
    if (linked) this.index.putLink(upstream, repository, digest);
    return linked;
  }

  /** The fleet's answer when newer than `access` (this node's), adopted into the index; otherwise `access`. */
  private async sharedAccess(upstream: string, repository: string, access: RepositoryAccess | undefined): Promise<RepositoryAccess | undefined> {
    const shared = await this.shared.access(upstream, repository);
    if (!shared || (access && access.checkedAt >= shared.checkedAt)) return access;
    this.index.putRepositoryAccess(upstream, repository, shared.public, shared.checkedAt);
    return shared;
  }

  /**
   * Cached content that is not known to be public, asked for without a token
   * while the upstream is in trouble: what the registry answers a client
   * without a token when it works, a 401 with our challenge, so the client
   * logs in (and gets an offline token naming its credentials) and retries.
   * containerd never pings /v2/ and learns auth only from this 401; relaying
   * the upstream's 429 or 5xx instead stops it before it ever presents
   * credentials that proved access before.
   */
  private challenge(request: PullRequest, repository: string): Promise<Response> {
    const response = new Response(errorBody("UNAUTHORIZED", "authentication required"), {
      status: 401,
      headers: { "content-type": "application/json", "www-authenticate": `Bearer scope="repository:${repository}:pull"` },
    });
    return this.remote.relay(request, { response }); // our realm and service, the routing prefix on the scope
  }

  private async clientProof(request: PullRequest, repository: string, digest: string, linked: boolean): Promise<Response | undefined> {
    const authorization = request.headers.get("authorization");
    const key = authorization ? `${hash(authorization)} ${request.route.upstream.name}/${repository}` : undefined;
    let proven = key ? this.proofs.get(key) : undefined;
    if (key && linked && !provenRecently(proven)) {
      // The same credentials may have just proved it on another node of a fleet (a client's
      // pulls spread over the nodes behind a balancer).
      proven = await this.shared.proof(key);
      if (provenRecently(proven)) this.remember(key, proven);
    }
    if (linked && provenRecently(proven)) return undefined;

    const result = await this.remote.fetch({ ...request, method: "HEAD" }, headOf(digest));
    if (result.response.status < 400) {
      await discard(result.response);
      this.link(request.route.upstream.name, repository, digest);
      if (key) {
        const at = Date.now();
        this.remember(key, at);
        this.shared.publishProof(key, at, PROOF_TTL_MS);
      }
      this.credentials.proven(authorization, `${request.route.upstream.name}/${repository}`);
      return undefined;
    }
    // Gone upstream, and these very credentials read it before: the client loses nothing it had.
    const readBefore = () => proven !== undefined || this.credentials.provenAny(authorization, `${request.route.upstream.name}/${repository}`);
    if (result.response.status === 404 && linked && this.keepDeleted && readBefore()) {
      await discard(result.response);
      return undefined;
    }
    return this.remote.relay(request, result);
  }

  private remember(key: string, at: number): void {
    const now = Date.now();
    this.proofs.set(key, at);
    if (this.proofs.size > 10_000) {
      for (const [k, at] of this.proofs) if (now - at >= PROOF_TTL_MS) this.proofs.delete(k);
    }
  }
}

function fresh(access: RepositoryAccess | undefined): access is RepositoryAccess {
  return access !== undefined && Date.now() - access.checkedAt < PUBLIC_TTL_MS;
}

function provenRecently(at: number | undefined): at is number {
  return at !== undefined && Date.now() - at < PROOF_TTL_MS;
}

/** A HEAD of exactly that content, stopping at a CDN redirect (the registry's answer is enough). */
function headOf(digest: string) {
  return { method: "HEAD" as const, reference: digest, withoutRange: true, followRedirects: false };
}

function hash(value: string): string {
  return new Bun.CryptoHasher("sha256").update(value).digest("hex");
}

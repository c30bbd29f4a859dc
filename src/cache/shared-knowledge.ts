/**
 * What the nodes of a fleet (issue 16) learn from the upstream and tell each
 * other, so that N nodes cost the upstream about what one node does: a tag's
 * answer and who is revalidating it, whether a repository is public, which
 * digests are in which repository (links), and which credentials proved
 * access to a repository a moment ago. Each node keeps its own copy in its
 * index (or, for proofs, in memory); this is only where a node that does not
 * know something looks before asking the upstream, and where it says what it
 * learnt.
 *
 * Every lookup may answer undefined (nothing known, or the fleet cannot be
 * asked): the caller then does what a single node does. Publishing never
 * fails and never makes the caller wait. A proof is named by the access
 * gate's key, which holds a sha256 of the client's Authorization, never the
 * value itself.
 *
 * NOTHING_SHARED is a single node's: nothing to look up, nothing to tell, and
 * every revalidation its own. The fleet's is fleet/shared-knowledge.ts.
 */
import type { RepositoryAccess, TagTarget } from "./cache-index";

/** A tag's answer is kept per upstream, repository, tag and accept class (manifest-cache.ts). */
export interface TagKey {
  upstream: string;
  repository: string;
  tag: string;
  acceptKey: string;
}

export interface TagAnswer extends TagTarget {
  /** When the upstream gave it (ms since the epoch): it is fresh for the tag's TTL from then. */
  fetchedAt: number;
}

/** The right to revalidate a tag for the fleet, until released (or it expires). */
export interface TagClaim {
  release(): void;
}

export interface SharedKnowledge {
  tag(key: TagKey): Promise<TagAnswer | undefined>;
  /** Kept for `ttlMs` after the answer's fetchedAt. */
  publishTag(key: TagKey, answer: TagAnswer, ttlMs: number): void;
  /**
   * A claim when this node should revalidate the tag (no other node is, or
   * the fleet cannot be asked); undefined while another node holds it.
   */
  claimTag(key: TagKey): Promise<TagClaim | undefined>;

  access(upstream: string, repository: string): Promise<RepositoryAccess | undefined>;
  /** Kept for `ttlMs` after checkedAt. */
  publishAccess(upstream: string, repository: string, access: RepositoryAccess, ttlMs: number): void;

  hasLink(upstream: string, repository: string, digest: string): Promise<boolean>;
  publishLink(upstream: string, repository: string, digest: string): void;

  /** When the credentials hashed into `proofKey` last proved access (ms since the epoch). */
  proof(proofKey: string): Promise<number | undefined>;
  /** Kept for `ttlMs` after `at`. */
  publishProof(proofKey: string, at: number, ttlMs: number): void;
}

const OWN_CLAIM: TagClaim = { release: () => undefined };

export const NOTHING_SHARED: SharedKnowledge = {
  tag: () => Promise.resolve(undefined),
  publishTag: () => undefined,
  claimTag: () => Promise.resolve(OWN_CLAIM),
  access: () => Promise.resolve(undefined),
  publishAccess: () => undefined,
  hasLink: () => Promise.resolve(false),
  publishLink: () => undefined,
  proof: () => Promise.resolve(undefined),
  publishProof: () => undefined,
};

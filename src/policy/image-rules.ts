/**
 * What may be pulled: allow and deny globs on `registry/repository`, and
 * globs on the tag.
 *
 * A pattern is `/`-separated segments. In a segment `*` matches any
 * characters but `/`: `docker.io/library/*` is Docker Hub's official images,
 * and a first segment `*` is any registry. A whole-segment `**` matches any
 * number of segments, none included: `ghcr.io/myorg/**`.
 * Names are compared as the upstream knows them: the registry host clients
 * write (`docker.io`, not `registry-1.docker.io`) and Docker Hub's official
 * images with their `library/` prefix. A pattern is read the way `docker pull`
 * reads a name (distribution's reference grammar): a first segment with a `.`
 * or `:`, or `localhost`, is a registry, anything else is on Docker Hub, and a
 * lone Docker Hub name is an official image, so `nginx` and `library/nginx`
 * both mean `docker.io/library/nginx`. A first segment `*` or `**` is any
 * registry. A pattern that can never match is refused, with the fix: an
 * operator must never believe an image blocked while every client pulls it.
 * That includes a registry no upstream serves (given the registries served):
 * `deny = ["example.invalid/foo/*"]` guards nothing, and an allow rule for it
 * is a promise docxy cannot keep.
 *
 * Tag globs only ever see requests by tag. A digest names content, not a
 * tag, so a pull by digest passes when its repository does: `allow_tags`
 * keeps clients on the tags the operator blessed but cannot stop someone who
 * knows the digest behind another tag. Keeping content out takes repository
 * rules, and an allow-list is the safer kind since whatever is not named is out.
 */
import { RegistryError } from "../oci/errors";

export interface ImageRules {
  /** `registry/repository` globs that may be pulled; empty allows every image. */
  allow: string[];
  /** `registry/repository` globs refused even when an allow glob matches. */
  deny: string[];
  /** Tag globs (`v*`, `latest`) a pull by tag must match; empty allows every tag. */
  allowTags: string[];
}

interface Glob {
  pattern: string;
  regex: RegExp;
}

export class ImagePolicy {
  private readonly allow: Glob[];
  private readonly deny: Glob[];
  private readonly allowTags: Glob[];

  /**
   * Throws an Error naming the offending pattern when one is malformed or can
   * never match. `served` is the registries the upstream table serves
   * (`docker.io`, `ghcr.io`, ...); without it registries are not checked.
   */
  constructor(rules: ImageRules, served?: readonly string[]) {
    this.allow = rules.allow.map((pattern) => imageGlob(pattern, "allow", served));
    this.deny = rules.deny.map((pattern) => imageGlob(pattern, "deny", served));
    this.allowTags = rules.allowTags.map(tagGlob);
  }

  /**
   * Throws DENIED, naming the rule, unless `registry/repository` may be
   * pulled. `tag` is given for requests by tag and left out for digests.
   */
  check(registry: string, repository: string, tag?: string): void {
    const image = `${registry.toLowerCase()}/${repository}`;
    const matches = (glob: Glob) => glob.regex.test(`/${image}`);
    const denyRule = this.deny.find(matches);
    if (denyRule) throw denied(`${image} is denied by the rule ${JSON.stringify(denyRule.pattern)}`, { image, rule: denyRule.pattern });
    if (this.allow.length > 0 && !this.allow.some(matches)) {
      throw denied(`${image} matches no allowed image pattern`, { image });
    }
    if (tag === undefined || this.allowTags.length === 0 || this.allowTags.some((glob) => glob.regex.test(tag))) return;
    const allowed = this.allowTags.map((glob) => JSON.stringify(glob.pattern)).join(", ");
    throw denied(`tag ${JSON.stringify(tag)} of ${image} matches no allowed tag pattern (${allowed})`, { image, tag });
  }
}

function denied(message: string, detail: Record<string, string>): RegistryError {
  return new RegistryError("DENIED", `pull denied: ${message}`, { detail });
}

/**
 * The glob as a regex over `/` + name: each segment adds `/<segment>`, and
 * `**` adds any number of `/<segment>`s, so it takes its separator along: with
 * segments `a`, `**`, `b` the glob matches `a/b` as well as `a/x/y/b`.
 */
function imageGlob(pattern: string, what: string, served: readonly string[] | undefined): Glob {
  const segments = asDockerReads(pattern.toLowerCase().split("/"));
  if (segments.some((segment) => segment === "")) {
    throw new Error(`invalid image pattern ${JSON.stringify(pattern)} in ${what}: empty path segment`);
  }
  const unmatchable = neverMatches(segments) ?? (served && unserved(segments[0]!, served));
  if (unmatchable) throw new Error(`image pattern ${JSON.stringify(pattern)} in ${what} can never match: ${unmatchable}`);
  const source = segments.map((segment) => (segment === "**" ? "(?:/[^/]+)*" : `/${segmentSource(segment)}`)).join("");
  return { pattern, regex: new RegExp(`^${source}$`) };
}

/** `registry/repository` segments for a pattern written as `docker pull` takes a name. */
export function asDockerReads(segments: string[]): string[] {
  const [first = ""] = segments;
  const hasRegistry = first === "*" || first === "**" || first === "localhost" || /[.:]/.test(first);
  const full = hasRegistry ? segments : ["docker.io", ...segments];
  // docker.io/nginx is docker.io/library/nginx (a `**` spans namespaces already).
  return full[0] === "docker.io" && full.length === 2 && full[1] !== "**" ? ["docker.io", "library", full[1]!] : full;
}

/** Why a pattern (already read as Docker does) matches no image name, if it matches none. */
export function neverMatches(segments: string[]): string | undefined {
  if (segments.length < 2 && segments[0] !== "**") return 'an image is "registry/repository": write "**" for every image';
  const host = segments[0]!;
  if (host === "registry-1.docker.io" || host === "index.docker.io") {
    return `Docker Hub's images are named "docker.io/…" here (write ${JSON.stringify(["docker.io", ...segments.slice(1)].join("/"))})`;
  }
  return undefined;
}

/** Why no image of registry `host` (a glob segment) can ever be pulled through docxy, if none can. */
function unserved(host: string, served: readonly string[]): string | undefined {
  if (host === "*" || host === "**") return undefined;
  const regex = new RegExp(`^${segmentSource(host)}$`);
  if (served.some((registry) => regex.test(registry.toLowerCase()))) return undefined;
  const registry = host.includes("*") ? `a registry matching ${JSON.stringify(host)}` : `the registry ${host}`;
  return `no upstream serves ${registry} (served: ${served.join(", ")}); fix the registry, or add an upstream for it ([[registry.upstreams]] with registry = "${host}")`;
}

/** Tags hold no `/`, so `*` is any run of characters; tags are case-sensitive. */
function tagGlob(pattern: string): Glob {
  if (pattern === "") throw new Error("invalid tag pattern \"\" in allow_tags");
  return { pattern, regex: new RegExp(`^${segmentSource(pattern)}$`) };
}

/** A glob segment as regex source: `*` is any run of characters but `/`. */
export function segmentSource(segment: string): string {
  return segment
    .split("*")
    .map((literal) => literal.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]*");
}

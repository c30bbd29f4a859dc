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
 * images with their `library/` prefix.
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

  /** Throws an Error naming the offending pattern when one is malformed. */
  constructor(rules: ImageRules) {
    this.allow = rules.allow.map((pattern) => imageGlob(pattern, "allow"));
    this.deny = rules.deny.map((pattern) => imageGlob(pattern, "deny"));
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
function imageGlob(pattern: string, what: string): Glob {
  const segments = pattern.toLowerCase().split("/");
  if (segments.some((segment) => segment === "")) {
    throw new Error(`invalid image pattern ${JSON.stringify(pattern)} in ${what}: empty path segment`);
  }
  const source = segments.map((segment) => (segment === "**" ? "(?:/[^/]+)*" : `/${segmentSource(segment)}`)).join("");
  return { pattern, regex: new RegExp(`^${source}$`) };
}

/** Tags hold no `/`, so `*` is any run of characters; tags are case-sensitive. */
function tagGlob(pattern: string): Glob {
  if (pattern === "") throw new Error("invalid tag pattern \"\" in allow_tags");
  return { pattern, regex: new RegExp(`^${segmentSource(pattern)}$`) };
}

function segmentSource(segment: string): string {
  return segment
    .split("*")
    .map((literal) => literal.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]*");
}

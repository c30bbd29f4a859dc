/**
 * The image lists an operator writes: `[cache] pin` entries and the lines of
 * the `[prewarm] file`. One syntax and one parser for both:
 *
 *     IMAGE [PLATFORM[,PLATFORM…]]
 *
 * e.g. `alpine:3.20 linux/amd64,linux/arm64`. IMAGE is read the way
 * `docker pull` reads a name (policy/image-rules.ts): `alpine`,
 * `library/alpine` and `docker.io/alpine` are all `docker.io/library/alpine`,
 * and no tag means `latest`. No platform means every platform. A `*` in the
 * tag (`ghcr.io/acme/app:1.*`) or in the registry or repository
 * (`ghcr.io/acme/*`, `**`) makes the entry a glob; what a glob covers is the
 * user's business (cache/pins.ts). An entry that can never name an image is
 * refused with the fix, as an image rule is: an operator must not believe an
 * image pinned while nothing is.
 */
import { isDigest, isRepositoryName, isTag } from "../oci/reference";
import { asDockerReads, neverMatches, segmentSource } from "../policy/image-rules";

export interface ImageEntry {
  /** As written, platforms included: the entry's name in the index, the status and logs. */
  text: string;
  /** Lowercase registry host as clients write it (`docker.io`); may be a glob. */
  registry: string;
  /** As the upstream knows it (`library/alpine`); may be a glob. */
  repository: string;
  /** Tag (may be a glob) or digest. */
  reference: string;
  /** `os/arch[/variant]`; empty for every platform. */
  platforms: string[];
  /** The registry or repository holds a `*`: it names no image by itself, only cached content can match. */
  repositoryGlob: boolean;
  /** The tag holds a `*`: matching tags are found in the repository's tag list. */
  tagGlob: boolean;
}

export interface ListedImage extends ImageEntry {
  /** 1-based line of the list file. */
  line: number;
}

export interface ListProblem {
  line: number;
  text: string;
  error: string;
}

const PLATFORM = /^[a-z0-9]+\/[a-z0-9]+(\/[a-z0-9]+)?$/;

/** One entry; throws an Error saying what is wrong and how to write it. */
export function parseImageEntry(text: string): ImageEntry {
  const [image = "", ...rest] = text.trim().split(/\s+/);
  if (image === "") throw new Error("no image named");
  const platforms = rest.flatMap((p) => p.split(",")).filter(Boolean);
  const badPlatform = platforms.find((p) => !PLATFORM.test(p));
  if (badPlatform) throw new Error(`platform ${JSON.stringify(badPlatform)} is not os/arch[/variant], e.g. linux/amd64,linux/arm64/v8`);

  const at = image.indexOf("@");
  const [path, digest] = at >= 0 ? [image.slice(0, at), image.slice(at + 1)] : [image, undefined];
  const colon = path.lastIndexOf(":");
  const tagged = colon > path.lastIndexOf("/");
  const name = tagged ? path.slice(0, colon) : path;
  const reference = digest ?? (tagged ? path.slice(colon + 1) : "latest");

  const segments = asDockerReads(name.split("/"));
  const registry = segments[0]!.toLowerCase();
  const repository = segments.slice(1).join("/");
  const unmatchable = neverMatches([registry, ...segments.slice(1)]);
  if (unmatchable) throw new Error(`${JSON.stringify(image)} can never name an image: ${unmatchable}`);
  const repositoryGlob = name.includes("*");
  const tagGlob = digest === undefined && reference.includes("*");
  // Checked with each `*` standing for one character: the rest must be a valid name and tag.
  const concrete = (s: string) => s.replace(/\*+/g, "a");
  // A lone `**` is every image: its registry segment spans the repository too.
  if (!(registry === "**" && repository === "") && !isRepositoryName(concrete(repository))) {
    throw new Error(`${JSON.stringify(image)}: ${JSON.stringify(repository)} is not a repository name (lowercase letters, digits, . _ - and /)`);
  }
  if (digest !== undefined) {
    if (!isDigest(digest)) throw new Error(`${JSON.stringify(image)}: ${JSON.stringify(digest)} is not a digest (sha256:<64 hex>)`);
    if (repositoryGlob) throw new Error(`${JSON.stringify(image)}: a digest names one image; write its repository without "*"`);
  } else if (!isTag(concrete(reference))) {
    throw new Error(`${JSON.stringify(image)}: ${JSON.stringify(reference)} is not a tag (letters, digits, _ . -, at most 128)`);
  }
  return { text: text.trim(), registry, repository, reference, platforms, repositoryGlob, tagGlob };
}

/** A list file: one entry a line, `#` comments, blank lines. A bad line is a problem, and the others still count. */
export function parseImageList(source: string): { images: ListedImage[]; problems: ListProblem[] } {
  const images: ListedImage[] = [];
  const problems: ListProblem[] = [];
  source.split(/\r?\n/).forEach((raw, i) => {
    const text = raw.replace(/#.*/, "").trim();
    if (text === "") return;
    try {
      images.push({ ...parseImageEntry(text), line: i + 1 });
    } catch (error) {
      problems.push({ line: i + 1, text, error: (error as Error).message });
    }
  });
  return { images, problems };
}

/** The reference `prewarm()` takes: `registry/repository:tag` or `…@digest`. */
export function imageReference(registry: string, repository: string, reference: string): string {
  return `${registry}/${repository}${reference.includes(":") ? "@" : ":"}${reference}`;
}

/** Whether a cached `registry/repository:tag` falls under the entry (its globs: `*` within a segment, `**` across). */
export function entryMatches(entry: ImageEntry, registry: string, repository: string, tag: string): boolean {
  return nameMatches(entry, registry, repository) && tagMatches(entry, tag);
}

/** Whether `registry/repository` falls under the entry's name, whatever the tag. */
export function nameMatches(entry: ImageEntry, registry: string, repository: string): boolean {
  const name = [entry.registry, ...entry.repository.split("/").filter(Boolean)]
    .map((segment) => (segment === "**" ? "(?:/[^/]+)*" : `/${segmentSource(segment)}`))
    .join("");
  return new RegExp(`^${name}$`).test(`/${registry}/${repository}`);
}

export function tagMatches(entry: ImageEntry, tag: string): boolean {
  return new RegExp(`^${segmentSource(entry.reference)}$`).test(tag);
}

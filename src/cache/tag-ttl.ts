/**
 * How long a tag's digest is trusted before a HEAD revalidates it: the
 * `tag_ttl` default, or the first `tag_ttl_overrides` glob that matches —
 * against the tag alone (`"latest"`), or against `repository:tag` when the
 * pattern has a colon (`"library/*:latest"`). `*` matches any run of
 * characters, including `/`.
 */
export function tagTtl(defaultMs: number, overrides: Record<string, number>): (repository: string, tag: string) => number {
  const rules = Object.entries(overrides).map(([pattern, ms]) => ({ regex: glob(pattern), withRepository: pattern.includes(":"), ms }));
  return (repository, tag) => rules.find((r) => r.regex.test(r.withRepository ? `${repository}:${tag}` : tag))?.ms ?? defaultMs;
}

function glob(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`);
}

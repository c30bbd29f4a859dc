/**
 * Image rules: `*` against `**`, any-registry globs, deny over allow, tag
 * globs for pulls by tag only, and the messages that name the rule.
 */
import { expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { ImagePolicy, type ImageRules } from "../../src/policy/image-rules";

const policy = (rules: Partial<ImageRules>) => new ImagePolicy({ allow: [], deny: [], allowTags: [], ...rules });
const allows = (p: ImagePolicy, image: string, tag?: string) => {
  const [registry, ...rest] = image.split("/");
  try {
    p.check(registry!, rest.join("/"), tag);
    return true;
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).ociCode).toBe("DENIED");
    return false;
  }
};
const errorOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error as RegistryError;
  }
  throw new Error("expected an error");
};

/** [pattern, image, matches] */
const GLOB_CASES: [string, string, boolean][] = [
  ["docker.io/library/*", "docker.io/library/alpine", true],
  ["docker.io/library/*", "docker.io/library/a/b", false], // `*` is one segment
  ["docker.io/library/*", "docker.io/bitnami/redis", false],
  ["docker.io/library/alp*", "docker.io/library/alpine", true],
  ["docker.io/library/alp*", "docker.io/library/ubuntu", false],
  ["docker.io/library/*ine", "docker.io/library/alpine", true],
  ["ghcr.io/myorg/**", "ghcr.io/myorg/app", true],
  ["ghcr.io/myorg/**", "ghcr.io/myorg/team/app/sub", true], // `**` is any number of segments
  ["ghcr.io/myorg/**", "ghcr.io/myorg", true], // ... none included
  ["ghcr.io/myorg/**", "ghcr.io/myorgx/app", false],
  ["ghcr.io/myorg/**", "ghcr.io/other/app", false],
  ["ghcr.io/**/app", "ghcr.io/app", true],
  ["ghcr.io/**/app", "ghcr.io/a/b/app", true],
  ["ghcr.io/**/app", "ghcr.io/a/b/app2", false],
  ["*/library/*", "docker.io/library/alpine", true], // any registry
  ["*/library/*", "registry.example.com:5000/library/alpine", true],
  ["*/library/*", "docker.io/nested/library/alpine", false],
  ["**", "quay.io/any/thing/at/all", true],
  ["docker.io/library/alpine", "docker.io/library/alpine", true], // no wildcard: exact
  ["docker.io/library/alpine", "docker.io/library/alpine2", false],
  ["docker.io/library/a.b", "docker.io/library/axb", false], // `.` is literal
  ["DOCKER.IO/library/*", "docker.io/library/alpine", true], // registry hosts ignore case
];

test.each(GLOB_CASES)("%p matches %p: %p", (pattern, image, matches) => {
  expect(allows(policy({ allow: [pattern] }), image)).toBe(matches);
  expect(allows(policy({ deny: [pattern] }), image)).toBe(!matches);
});

test("the registry name is compared without regard to case", () => {
  expect(allows(policy({ allow: ["docker.io/library/*"] }), "Docker.IO/library/alpine")).toBe(true);
});

test("an empty allow list allows everything; deny wins over allow", () => {
  expect(allows(policy({}), "quay.io/x/y", "anything")).toBe(true);
  const p = policy({ allow: ["docker.io/library/*"], deny: ["docker.io/library/ubuntu"] });
  expect(allows(p, "docker.io/library/alpine")).toBe(true);
  expect(allows(p, "docker.io/library/ubuntu")).toBe(false);
  expect(allows(p, "docker.io/library/ubuntu", "latest")).toBe(false);
});

test("denials name the rule", () => {
  const p = policy({ allow: ["docker.io/library/*"], deny: ["docker.io/library/ub*"], allowTags: ["v*", "latest"] });
  const denied = errorOf(() => p.check("docker.io", "library/ubuntu"));
  expect(denied.status).toBe(403);
  expect(denied.message).toBe('pull denied: docker.io/library/ubuntu is denied by the rule "docker.io/library/ub*"');
  expect(denied.detail).toEqual({ image: "docker.io/library/ubuntu", rule: "docker.io/library/ub*" });
  expect(errorOf(() => p.check("ghcr.io", "x/y")).message).toBe("pull denied: ghcr.io/x/y matches no allowed image pattern");
  expect(errorOf(() => p.check("docker.io", "library/alpine", "3.20")).message).toBe(
    'pull denied: tag "3.20" of docker.io/library/alpine matches no allowed tag pattern ("v*", "latest")',
  );
});

test("allow_tags applies to pulls by tag; a digest pull needs only its repository allowed", () => {
  const p = policy({ allow: ["docker.io/library/*"], allowTags: ["v*", "latest"] });
  expect(allows(p, "docker.io/library/alpine", "latest")).toBe(true);
  expect(allows(p, "docker.io/library/alpine", "v1.2")).toBe(true);
  expect(allows(p, "docker.io/library/alpine", "3.20")).toBe(false);
  expect(allows(p, "docker.io/library/alpine", "Latest")).toBe(false); // tags are case-sensitive
  expect(allows(p, "docker.io/library/alpine", "latest-rc")).toBe(false); // whole tag
  expect(allows(p, "docker.io/library/alpine")).toBe(true); // by digest
  expect(allows(p, "docker.io/bitnami/redis")).toBe(false); // by digest, repository not allowed
  // and with no tag rules every tag passes
  expect(allows(policy({}), "docker.io/library/alpine", "3.20")).toBe(true);
});

test("tag globs: `*` is any run of characters, the rest is literal", () => {
  const p = policy({ allowTags: ["*-alpine", "1.*.0"] });
  expect(allows(p, "docker.io/library/node", "20-alpine")).toBe(true);
  expect(allows(p, "docker.io/library/node", "1.22.0")).toBe(true);
  expect(allows(p, "docker.io/library/node", "1x22x0")).toBe(false);
  expect(allows(p, "docker.io/library/node", "20-bookworm")).toBe(false);
});

test("malformed patterns are readable errors", () => {
  expect(() => policy({ allow: ["docker.io//alpine"] })).toThrow('invalid image pattern "docker.io//alpine" in allow: empty path segment');
  expect(() => policy({ deny: ["/docker.io/x"] })).toThrow('invalid image pattern "/docker.io/x" in deny');
  expect(() => policy({ deny: ["docker.io/x/"] })).toThrow("empty path segment");
  expect(() => policy({ allowTags: [""] })).toThrow('invalid tag pattern "" in allow_tags');
});

test("patterns are read the way docker pull reads names: nginx and library/nginx are docker.io/library/nginx", () => {
  const cases: [string, string, boolean][] = [
    ["nginx", "docker.io/library/nginx", true],
    ["library/nginx", "docker.io/library/nginx", true],
    ["docker.io/nginx", "docker.io/library/nginx", true],
    ["nginx", "ghcr.io/library/nginx", false],
    ["bitnami/*", "docker.io/bitnami/redis", true],
    ["bitnami/*", "quay.io/bitnami/redis", false],
    ["ngin*", "docker.io/library/nginx", true],
    ["localhost/app", "localhost/app", true],
    ["localhost:5000/app", "localhost:5000/app", true],
    ["docker.io/**", "docker.io/bitnami/redis", true],
  ];
  for (const [pattern, image, matches] of cases) {
    expect([pattern, image, allows(policy({ allow: [pattern] }), image)]).toEqual([pattern, image, matches]);
  }
  // The rule of the issue: accepted before, and blocking nothing.
  const p = policy({ deny: ["library/nginx", "nginx"] });
  expect(allows(p, "docker.io/library/nginx")).toBe(false);
  expect(allows(p, "docker.io/library/alpine")).toBe(true);
});

test("a pattern that can never match is refused at load, with the fix", () => {
  expect(() => policy({ deny: ["*"] })).toThrow('image pattern "*" in deny can never match: an image is "registry/repository": write "**" for every image');
  expect(() => policy({ allow: ["registry-1.docker.io/library/nginx"] })).toThrow('(write "docker.io/library/nginx")');
  expect(() => policy({ allow: ["index.docker.io/bitnami/*"] })).toThrow("can never match");
});

test("given the registries served, a rule for any other registry is refused with the fix; any-registry rules and globs that match one pass", () => {
  const served = ["docker.io", "ghcr.io", "registry.local:5000"];
  const withServed = (rules: Partial<ImageRules>) => new ImagePolicy({ allow: [], deny: [], allowTags: [], ...rules }, served);
  expect(() => withServed({ deny: ["example.invalid/foo/*"] })).toThrow(
    'image pattern "example.invalid/foo/*" in deny can never match: no upstream serves the registry example.invalid (served: docker.io, ghcr.io, registry.local:5000); fix the registry, or add an upstream for it ([[registry.upstreams]] with registry = "example.invalid")',
  );
  expect(() => withServed({ allow: ["*.example.invalid/**"] })).toThrow('no upstream serves a registry matching "*.example.invalid"');
  expect(() => withServed({ allow: ["quay.io/x/*"] })).toThrow("no upstream serves the registry quay.io");
  for (const pattern of ["nginx", "ghcr.io/org/**", "GHCR.io/org/*", "registry.local:5000/app", "*/library/*", "**", "ghcr.*/x"]) {
    expect(() => withServed({ allow: [pattern], deny: [pattern] })).not.toThrow();
  }
  // Without the served list (a policy built elsewhere) registries are not checked.
  expect(() => policy({ deny: ["example.invalid/foo/*"] })).not.toThrow();
});

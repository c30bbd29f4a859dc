import { expect, test } from "bun:test";
import { formatBearerChallenge, parseChallenge } from "../../src/upstream/challenge";

test("parses Docker Hub's challenge with scope and error", () => {
  const c = parseChallenge(
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull",error="insufficient_scope"',
  );
  expect(c).toEqual({
    scheme: "Bearer",
    params: {
      realm: "https://auth.docker.io/token",
      service: "registry.docker.io",
      scope: "repository:library/redis:pull",
      error: "insufficient_scope",
    },
  });
});

test("parses bare values, spaces and escaped quotes", () => {
  const c = parseChallenge('Bearer realm=https://r/token , service="a \\"b\\"", scope="repository:x:pull repository:y:pull"');
  expect(c?.params).toEqual({ realm: "https://r/token", service: 'a "b"', scope: "repository:x:pull repository:y:pull" });
});

test("formats with quoting and leaves undefined parameters out", () => {
  expect(formatBearerChallenge({ realm: "http://p/auth/x/token", service: 'q"s', scope: undefined })).toBe(
    'Bearer realm="http://p/auth/x/token",service="q\\"s"',
  );
});

test("a round trip keeps every parameter", () => {
  const params = { realm: "http://h:1/auth/hub/token", service: "svc", scope: "repository:a/b:pull", error: "invalid_token" };
  expect(parseChallenge(formatBearerChallenge(params))?.params).toEqual(params);
});

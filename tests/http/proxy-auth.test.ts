/**
 * authenticate() in process, with real users and real docxy tokens. Logins
 * and pulls by skopeo through the binary: tests/integration/http/proxy-auth.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { ProxyTokens } from "../../src/auth/proxy-tokens";
import { ProxyUsers } from "../../src/auth/users";
import { authenticate } from "../../src/http/proxy-auth";
import { RegistryError } from "../../src/oci/errors";

const users = await ProxyUsers.open({ tokens: ["ci:static-token-of-ci-0123456789"] });
const tokens = new ProxyTokens({ secret: ProxyTokens.secretFrom(undefined), ttlSeconds: 300 });
const auth = { users, tokens };
afterAll(() => users.close());

const ORIGIN = "https://docxy.example";
const bearing = (token: string | undefined) => new Request(`${ORIGIN}/v2/`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

function challenge(request: Request, repository?: string): string {
  try {
    authenticate(auth, request, ORIGIN, repository);
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).status).toBe(401);
    expect((error as RegistryError).headers["cache-control"]).toBe("no-store");
    return (error as RegistryError).headers["www-authenticate"]!;
  }
  throw new Error("authenticated");
}

test("a docxy token granting pull on the repository names its user; /v2/ itself needs only a valid token", () => {
  const { token } = tokens.issue("alice", ["repository:ghcr.io/org/app:pull"]);
  expect(authenticate(auth, bearing(token), ORIGIN, "ghcr.io/org/app")).toBe("alice");
  expect(authenticate(auth, bearing(token), ORIGIN)).toBe("alice");
});

test("a static token names its user for any repository", () => {
  expect(authenticate(auth, bearing("static-token-of-ci-0123456789"), ORIGIN, "library/alpine")).toBe("ci");
});

test("no token, a foreign token, or one for another repository: a challenge to docxy's token endpoint", () => {
  expect(challenge(bearing(undefined))).toBe(`Bearer realm="${ORIGIN}/auth/token",service="docxy"`);
  expect(challenge(bearing("not-a-token"), "library/alpine")).toBe(`Bearer realm="${ORIGIN}/auth/token",service="docxy",scope="repository:library/alpine:pull",error="invalid_token"`);
  const { token } = tokens.issue("alice", ["repository:library/alpine:pull"]);
  expect(challenge(bearing(token), "library/nginx")).toBe(`Bearer realm="${ORIGIN}/auth/token",service="docxy",scope="repository:library/nginx:pull",error="insufficient_scope"`);
});

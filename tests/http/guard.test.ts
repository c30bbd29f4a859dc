/**
 * The guards in process, on real policies: who connects, how often, what is
 * pulled, how fast. Every route and routing mode applying them, through the
 * binary: tests/integration/http/guard.test.ts.
 */
import { expect, test } from "bun:test";
import { admit, admitUser, checkImage, shaped, type Guards } from "../../src/http/guard";
import { contextOf, ServedRequest } from "../../src/http/request-context";
import { RegistryError } from "../../src/oci/errors";
import { BandwidthLimiter } from "../../src/policy/bandwidth";
import { ImagePolicy } from "../../src/policy/image-rules";
import { NetworkPolicy } from "../../src/policy/network";
import { MemoryRateLimitStore, RequestLimiter } from "../../src/policy/rate-limiter";
import type { Route } from "../../src/upstream/routing";

function guards(over: Partial<Guards> = {}): Guards {
  const fixed = new ImagePolicy({ allow: [], deny: [], allowTags: [] });
  return {
    network: new NetworkPolicy({ allow: [], deny: [], trustedProxies: [] }),
    addressLimiter: undefined,
    userLimiter: undefined,
    images: () => fixed,
    bandwidth: undefined,
    ...over,
  };
}

const from = (remoteAddress: string, headers: Record<string, string> = {}) =>
  new ServedRequest("http://127.0.0.1:5000/v2/", { headers }, { host: "localhost:5000", secure: false, localPort: 5000, remoteAddress });

async function refusal(attempt: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof attempt === "function" ? attempt() : attempt);
    return "admitted";
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError);
    return `${(error as RegistryError).status} ${(error as RegistryError).ociCode}`;
  }
}

test("admit notes the client address: the socket's, or X-Forwarded-For's from a trusted proxy only", async () => {
  const trusting = guards({ network: new NetworkPolicy({ allow: [], deny: [], trustedProxies: ["127.0.0.1"] }) });
  const proxied = from("127.0.0.1", { "x-forwarded-for": "10.1.2.3" });
  expect(await admit(trusting, proxied, contextOf(proxied))).toBe("10.1.2.3");
  expect(proxied.context.notes.client).toBe("10.1.2.3");
  const direct = from("192.0.2.5", { "x-forwarded-for": "10.1.2.3" });
  expect(await admit(trusting, direct, contextOf(direct))).toBe("192.0.2.5");
});

test("a denied address is refused; past the per-address limit, 429", async () => {
  const denying = guards({ network: new NetworkPolicy({ allow: [], deny: ["192.0.2.0/24"], trustedProxies: [] }) });
  const denied = from("192.0.2.5");
  expect(await refusal(admit(denying, denied, contextOf(denied)))).toBe("403 DENIED");

  const limited = guards({ addressLimiter: new RequestLimiter({ store: new MemoryRateLimitStore(), limit: 2, windowMs: 60_000 }) });
  const outcomes = [];
  for (let i = 0; i < 3; i++) {
    const request = from("198.51.100.7");
    outcomes.push(await refusal(admit(limited, request, contextOf(request))));
  }
  expect(outcomes).toEqual(["admitted", "admitted", "429 TOOMANYREQUESTS"]);
});

test("the per-user limit counts users, not addresses", async () => {
  const limited = guards({ userLimiter: new RequestLimiter({ store: new MemoryRateLimitStore(), limit: 1, windowMs: 60_000 }) });
  expect(await refusal(admitUser(limited, "alice"))).toBe("admitted");
  expect(await refusal(admitUser(limited, "bob"))).toBe("admitted");
  expect(await refusal(admitUser(limited, "alice"))).toBe("429 TOOMANYREQUESTS");
});

test("image rules see the repository as the upstream names it, and the tag only when pulled by tag", async () => {
  const policy = guards({ images: () => new ImagePolicy({ allow: ["docker.io/library/*"], deny: [], allowTags: ["3.*"] }) });
  const hub = { upstream: { name: "dockerhub", registry: "docker.io", url: "https://registry-1.docker.io", hosts: [], autoLibraryPrefix: true }, via: "default" } as Route;
  const check = (name: string, reference: string) => refusal(() => checkImage(policy, hub, { kind: "manifests", name, reference }));
  const outcomes = [await check("alpine", "3.20"), await check("alpine", "latest"), await check("alpine", `sha256:${"a".repeat(64)}`), await check("acme/app", "3.1")];
  expect(outcomes).toEqual(["admitted", "403 DENIED", "admitted", "403 DENIED"]);
});

test("shaped throttles successful bodies only, and leaves them whole", async () => {
  const limited = guards({ bandwidth: new BandwidthLimiter(1024 * 1024) });
  const request = from("192.0.2.9");
  const context = contextOf(request);
  context.notes.client = "192.0.2.9";
  const body = new Uint8Array(4096).fill(7);
  const throttled = shaped(limited, context, new Response(body, { headers: { "content-length": "4096" } }));
  expect(throttled.headers.get("content-length")).toBe("4096");
  expect(new Uint8Array(await throttled.arrayBuffer())).toEqual(body);
  const error = new Response("{}", { status: 404 });
  expect(shaped(limited, context, error)).toBe(error);
  const unlimited = new Response(body);
  expect(shaped(guards(), context, unlimited)).toBe(unlimited);
});

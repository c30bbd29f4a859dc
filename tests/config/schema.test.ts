/**
 * The schema's defaults and decodes in process. How the schema is applied
 * to files, the environment and flags, and its messages, are in
 * load.test.ts; the checks it cannot express in validate.test.ts.
 */
import { expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema } from "../../src/config/schema";

const defaults = () => Value.Decode(ConfigSchema, Value.Default(ConfigSchema, {}));

test("the defaults are Wharf 0.6.2's where Wharf has the key: HTTP on 5000 in front of Docker Hub", () => {
  const { server, registry, tls } = defaults();
  expect(server).toMatchObject({ http_port: 5000, https_port: 443, http_enabled: true, https_enabled: false, behind_proxy: false });
  expect(registry).toMatchObject({ default: "dockerhub", upstream_registry: "https://registry-1.docker.io", auto_library_prefix: true, upstreams: [] });
  expect([registry.auth_realm, registry.auth_service, tls]).toEqual([undefined, undefined, undefined]);
});

test("sizes and durations decode to bytes and milliseconds, from text or bare numbers", () => {
  expect(defaults().cache).toMatchObject({ max_size: 20 * 1024 ** 3, max_age: 30 * 86_400_000, tag_ttl: 60_000, max_fill_bytes: 0, tag_ttl_overrides: {} });
  const written = Value.Default(ConfigSchema, { cache: { max_size: 1000, tag_ttl: 0, tag_ttl_overrides: { latest: "10s" } }, auth: { token_ttl: "1.5h" } });
  const config = Value.Decode(ConfigSchema, written);
  expect([config.cache.max_size, config.cache.tag_ttl, config.cache.tag_ttl_overrides, config.auth.token_ttl]).toEqual([1000, 0, { latest: 10_000 }, 5_400_000]);
});

test("an upstream entry gets no defaults, so an override of a built-in can tell unset from set", () => {
  const { registry } = Value.Default(ConfigSchema, { registry: { upstreams: [{ name: "ghcr" }] } }) as { registry: { upstreams: object[] } };
  expect(registry.upstreams[0]).toEqual({ name: "ghcr" });
});

test("ports and counts are bounded", () => {
  const errors = (written: Record<string, unknown>) => [...Value.Errors(ConfigSchema, Value.Default(ConfigSchema, written))].map((e) => e.path);
  expect(errors({ server: { http_port: 65536 } })).toEqual(["/server/http_port"]);
  expect(errors({ cache: { max_fills: 0 } })).toEqual(["/cache/max_fills"]);
  expect(errors({ upstream: { max_redirects: 21 } })).toEqual(["/upstream/max_redirects"]);
  expect(errors({ cache: { max_size: true } })).toContain("/cache/max_size");
});

test("storage defaults to the filesystem and no fleet: a single node needs no bucket and no Redis (issue 16)", () => {
  const { cache, fleet } = defaults();
  expect(cache.storage).toBe("filesystem");
  // us-east-1, not Bun's "auto": stores other than R2 refuse "auto" (fleet.md §2). No hot tier: every hit reads the bucket.
  // No presigned redirects: by default clients talk to docxy only.
  expect(cache.s3).toEqual({
    endpoint: "",
    bucket: "",
    region: "us-east-1",
    access_key_id: "",
    secret_access_key: "",
    prefix: "",
    hot_tier_size: 0,
    presigned_redirect: false,
    presigned_ttl: 5 * 60_000,
  });
  // A node whose Redis or bucket is away at start starts degraded unless told to exit.
  expect(fleet).toEqual({ redis_url: "", advertise_url: "", secret: "", secret_file: "", on_unreachable: "degrade" });
  const errors = [...Value.Errors(ConfigSchema, Value.Default(ConfigSchema, { cache: { storage: "minio" }, fleet: { on_unreachable: "crash" } }))].map((e) => e.path);
  expect(errors).toContain("/cache/storage");
  expect(errors).toContain("/fleet/on_unreachable");
});

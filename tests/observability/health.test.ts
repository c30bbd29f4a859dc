/**
 * `/health`'s view of an upstream in trouble, in process: the real
 * HealthMonitor and client against the raw-TCP fake registry behind the fault
 * switch (tests/support/trouble.ts). Each state comes with the reason, so an
 * operator sees "answered 429" rather than a bare "degraded". The cache's
 * storage state comes from its watcher (cache/watched-storage.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { StorageStatus } from "../../src/cache/watched-storage";
import { HealthMonitor } from "../../src/observability/health";
import { UpstreamClient } from "../../src/upstream/client";
import { UpstreamTable } from "../../src/upstream/table";
import { troubledFakeRegistry, type TroubleMode } from "../support/trouble";

const faulty = troubledFakeRegistry();

const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 3 }, "docxy/test");

/** A fresh monitor each time: results are reused for a few seconds. */
async function report(mode: TroubleMode) {
  await faulty.trouble.set(mode);
  const table = new UpstreamTable([{ name: "fake", registry: "fake.io", url: faulty.trouble.url, hosts: [], autoLibraryPrefix: false }], "fake");
  const { status, upstreams } = await new HealthMonitor(table, client, "test", 300).report();
  await faulty.trouble.set({ kind: "pass" });
  const { state, reason, reachable, retry_after } = upstreams[0]!;
  return { status, state, reason, reachable, retry_after };
}

test("an upstream answering as a registry is up, without a reason", async () => {
  expect(await report({ kind: "pass" })).toEqual({ status: "ok", state: "up", reason: undefined, reachable: true, retry_after: undefined });
});

test("a 429 is rate-limited, with the upstream's Retry-After", async () => {
  expect(await report({ kind: "status", status: 429, retryAfter: "42" })).toEqual({
    status: "degraded",
    state: "rate-limited",
    reason: "answered 429",
    reachable: true,
    retry_after: "42",
  });
});

test("a 5xx or an unexpected status is failing, with the status as the reason", async () => {
  for (const status of [500, 502, 503, 504, 404]) {
    const got = await report({ kind: "status", status });
    expect(got).toEqual({ status: "degraded", state: "failing", reason: `answered ${status}`, reachable: status < 500, retry_after: undefined });
  }
});

test("no answer in time, a closed connection or a refused one is unreachable, saying which", async () => {
  const hung = await report({ kind: "hang" });
  expect({ ...hung, reason: undefined }).toEqual({ status: "degraded", state: "unreachable", reason: undefined, reachable: false, retry_after: undefined });
  expect(hung.reason).toContain("did not answer within 0.3s");
  for (const mode of [{ kind: "close" }, { kind: "refuse" }] as const) {
    const got = await report(mode);
    expect({ state: got.state, status: got.status }).toEqual({ state: "unreachable", status: "degraded" });
    expect(got.reason).toContain("is unreachable");
  }
});

test("the cache's storage is reported as its watcher sees it, live; failing makes the whole report degraded", async () => {
  await faulty.trouble.set({ kind: "pass" });
  const table = new UpstreamTable([{ name: "fake", registry: "fake.io", url: faulty.trouble.url, hosts: [], autoLibraryPrefix: false }], "fake");
  let storage: StorageStatus = { storage: "s3", state: "up", failures: 0 };
  const monitor = new HealthMonitor(table, client, "test", 300, () => storage);
  expect(await monitor.report()).toMatchObject({ status: "ok", cache: { storage: "s3", state: "up" } });
  expect((await monitor.report()).cache).not.toHaveProperty("reason");
  storage = { storage: "s3", state: "failing", reason: "HEAD s3://docxy/blobs/sha256/ab failed: connection refused", failures: 3 };
  const failing = await monitor.report();
  expect(failing.status).toBe("degraded");
  expect(failing.cache).toEqual({ storage: "s3", state: "failing", reason: "HEAD s3://docxy/blobs/sha256/ab failed: connection refused" });
  expect(failing.upstreams[0]!.state).toBe("up");
  // No cache, no section.
  expect(await new HealthMonitor(table, client, "test", 300).report()).not.toHaveProperty("cache");
});

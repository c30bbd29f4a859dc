import { expect, test } from "bun:test";
import { RecentPulls, type RecentPull } from "../../src/observability/recent-pulls";

const pull = (reference: string): RecentPull => ({ time: "2026-12-04T00:00:00.000Z", client: "192.0.2.1", registry: "docker.io", repository: "library/alpine", reference, status: 200, cache: "HIT" });

test("newest first, and only the last `capacity` kept", () => {
  const pulls = new RecentPulls(3);
  for (const reference of ["1", "2", "3", "4", "5"]) pulls.add(pull(reference));
  expect(pulls.list().map((p) => p.reference)).toEqual(["5", "4", "3"]);
});

test("20 by default", () => {
  const pulls = new RecentPulls();
  for (let i = 0; i < 25; i++) pulls.add(pull(String(i)));
  expect(pulls.list()).toHaveLength(20);
  expect(pulls.list()[0]!.reference).toBe("24");
});

import { expect, test } from "bun:test";
import { createAccessLog } from "../../src/observability/access-log";

const entry = { client: "::ffff:10.0.0.7", user: "alice", method: "GET", path: "/v2/library/x/blobs/sha256:ab", registry: "docker.io", repository: "library/x", status: 200, bytes: 123, ms: 4, cache: "HIT", complete: true };

test("JSON lines carry every audit field", () => {
  const lines: string[] = [];
  createAccessLog("json", (l) => lines.push(l))(entry);
  expect(lines).toHaveLength(1);
  expect(lines[0]!.endsWith("\n")).toBe(true);
  expect(JSON.parse(lines[0]!)).toMatchObject({ level: "info", msg: "request", ...entry, time: expect.any(String) });
});

test("text is logfmt; off writes nothing", () => {
  const lines: string[] = [];
  createAccessLog("text", (l) => lines.push(l))({ ...entry, query: "ns=docker.io", user: undefined });
  for (const field of ["client=::ffff:10.0.0.7", "method=GET", "path=/v2/library/x/blobs/sha256:ab", "query=ns=docker.io", "registry=docker.io", "cache=HIT"]) {
    expect(lines[0]).toContain(` ${field}`);
  }
  expect(lines[0]).not.toContain("user=");
  createAccessLog("off", (l) => lines.push(l))(entry);
  expect(lines).toHaveLength(1);
});

/**
 * `[fleet] on_unreachable` through the binary, with a Redis URL pointing at a closed port:
 * "exit" ends the process with status 1 before it listens, saying Redis cannot be reached and
 * never the URL's password; "degrade" (the default) starts, says so, and `/health` reports the
 * node coordinating alone. The probes themselves: tests/fleet/reachability.test.ts; a bucket
 * down at start: tests/integration/fleet/s3-storage.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCXY_BIN, ensureBinary, type Docxy } from "../../support/docxy-process";
import { FLEET_SECRET, health, startNode } from "../../support/fleet";
import { freePort } from "../../support/ports";

const PASSWORD = "redis-password-of-the-start-policy-test";
const scratch = mkdtempSync(join(tmpdir(), "docxy-start-policy-"));
const started: Docxy[] = [];
afterAll(async () => {
  await Promise.all(started.map((d) => d.stop()));
  rmSync(scratch, { recursive: true, force: true });
});

/** No upstream is needed: the node never gets as far as pulling. */
const REGISTRY = `[registry]\nupstream_registry = "http://127.0.0.1:9"\n`;
const closedRedis = async () => `redis://docxy:${PASSWORD}@127.0.0.1:${await freePort()}`;

test('on_unreachable = "exit": no Redis at start ends the process with 1 before it listens, naming Redis', async () => {
  await ensureBinary();
  const path = join(scratch, "exit.toml");
  const port = await freePort();
  await Bun.write(
    path,
    `${REGISTRY}[fleet]\nredis_url = "${await closedRedis()}"\nadvertise_url = "http://127.0.0.1:${port}"\nsecret = "${FLEET_SECRET}"\non_unreachable = "exit"\n`,
  );
  const child = Bun.spawn([DOCXY_BIN, "-c", path, "--bind", "127.0.0.1", "--http-port", String(port)], {
    env: { PATH: process.env.PATH ?? "" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  const output = stdout + stderr;
  expect(code).toBe(1);
  expect(output).toContain('Redis cannot be reached at start: exiting (fleet.on_unreachable = \\"exit\\")');
  expect(output).toContain(`where=redis://127.0.0.1:`);
  expect(output).not.toContain("msg=listening");
  expect(output).not.toContain("docxy started");
  expect(output).not.toContain(PASSWORD);
});

test('on_unreachable = "degrade" (the default): the node starts, says why, and /health says it coordinates alone', async () => {
  const node = await startNode(REGISTRY, await closedRedis());
  started.push(node);
  expect(node.log()).toContain("Redis cannot be reached at start: starting degraded");
  const report = await health(node);
  expect(report.fleet).toEqual({ coordination: "local" });
  expect(report.status).toBe("degraded");
  expect(node.log()).not.toContain(PASSWORD);
});

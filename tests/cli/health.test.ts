import { afterAll, expect, test } from "bun:test";
import { UsageError } from "../../src/cli/args";
import { healthCommand, healthUrl } from "../../src/cli/health";
import { loadConfig } from "../../src/config/load";
import { freePort } from "../support/ports";

// A stand-in for docxy's /health: 200 with the report's status, or the status the path names.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/health") return Response.json({ status: "degraded" });
    return new Response("no", { status: Number(path.slice(1)) || 404 });
  },
});
afterAll(() => server.stop(true));
const base = `http://127.0.0.1:${server.port}`;

test("exit 0 on a 200 from /health, 1 on any other answer and on no answer", async () => {
  expect(await healthCommand(["--url", `${base}/health`], {})).toBe(0);
  expect(await healthCommand(["--url", `${base}/503`], {})).toBe(1);
  expect(await healthCommand(["--url", `${base}/204`], {})).toBe(1);
  expect(await healthCommand(["--url", `http://127.0.0.1:${await freePort()}/health`], {})).toBe(1);
});

test("without --url it asks the HTTP port the configuration gives (here DOCXY_SERVER_HTTP_PORT)", async () => {
  expect(await healthCommand([], { DOCXY_SERVER_HTTP_PORT: String(server.port) })).toBe(0);
  expect(await healthCommand([], { DOCXY_SERVER_HTTP_PORT: String(await freePort()) })).toBe(1);
  expect(await healthCommand([], { DOCXY_SERVER_HTTP_PORT: "not-a-port" })).toBe(1);
});

test("the default URL: loopback unless bind names only other addresses; no HTTP listener is a usage error", async () => {
  const url = async (env: Record<string, string>) => healthUrl((await loadConfig({ env })).config);
  expect(await url({})).toBe("http://127.0.0.1:5000/health");
  expect(await url({ DOCXY_SERVER_HTTP_PORT: "8080", DOCXY_SERVER_BIND: "::,10.0.0.5" })).toBe("http://127.0.0.1:8080/health");
  expect(await url({ DOCXY_SERVER_BIND: "10.0.0.5" })).toBe("http://10.0.0.5:5000/health");
  expect(await url({ DOCXY_SERVER_BIND: "fd00::5" })).toBe("http://[fd00::5]:5000/health");
  const { config } = await loadConfig({ env: {} });
  expect(() => healthUrl({ ...config, server: { ...config.server, http_enabled: false } })).toThrow(UsageError);
});

test("unknown options and a missing --url value are usage errors", async () => {
  await expect(healthCommand(["--nope"], {})).rejects.toThrow(UsageError);
  await expect(healthCommand(["--url"], {})).rejects.toThrow(UsageError);
});

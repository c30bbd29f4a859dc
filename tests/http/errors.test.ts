/**
 * The HTTP edge's translation: RegistryErrors as they are, Elysia's own
 * errors as registry JSON, anything else a generic 500 whose detail goes only
 * to the log. The exact shape of a registry error answer is in
 * tests/oci/responses.test.ts.
 */
import { expect, test } from "bun:test";
import { errorResponse } from "../../src/http/errors";
import { RegistryError } from "../../src/oci/errors";
import { parsePullPath } from "../../src/oci/paths";

const logged: string[] = [];
const log = { error: (message: string, fields?: Record<string, unknown>) => void logged.push(`${message} ${JSON.stringify(fields)}`) };
const request = (method = "GET") => new Request("http://docxy.test/v2/x/y", { method });

async function answer(response: Response) {
  const body = await response.text();
  return {
    status: response.status,
    version: response.headers.get("docker-distribution-api-version"),
    code: body === "" ? undefined : (JSON.parse(body) as { errors: { code: string }[] }).errors[0]!.code,
  };
}

test.each(["GET", "HEAD"])("%s of a manifest reference that is no tag (the conformance suite's .INVALID_MANIFEST_NAME) is 404 MANIFEST_UNKNOWN", async (method) => {
  let thrown: unknown;
  try {
    parsePullPath("conformance/test/manifests/.INVALID_MANIFEST_NAME");
  } catch (error) {
    thrown = error;
  }
  const response = errorResponse("UNKNOWN", thrown, request(method), log);
  expect(await answer(response)).toEqual({ status: 404, version: "registry/2.0", code: method === "HEAD" ? undefined : "MANIFEST_UNKNOWN" });
});

test("a RegistryError keeps its status and headers", async () => {
  const response = errorResponse("UNKNOWN", new RegistryError("UNSUPPORTED", "pull-only", { headers: { allow: "GET, HEAD" } }), request("PUT"), log);
  expect(response.headers.get("allow")).toBe("GET, HEAD");
  expect(await answer(response)).toEqual({ status: 405, version: "registry/2.0", code: "UNSUPPORTED" });
});

test("Elysia's own errors become registry JSON: no route is NOT_FOUND, a malformed request BAD_REQUEST", async () => {
  expect(await answer(errorResponse("NOT_FOUND", new Error("NOT_FOUND"), request(), log))).toEqual({ status: 404, version: "registry/2.0", code: "NOT_FOUND" });
  expect(await answer(errorResponse("VALIDATION", new Error("422"), request(), log))).toEqual({ status: 400, version: "registry/2.0", code: "BAD_REQUEST" });
  expect(await answer(errorResponse("PARSE", new Error("bad json"), request(), log))).toEqual({ status: 400, version: "registry/2.0", code: "BAD_REQUEST" });
});

test("an unexpected error is a generic 500; its message and stack go to the log only", async () => {
  logged.length = 0;
  const response = errorResponse("UNKNOWN", new Error("EIO: secret internal detail"), request(), log);
  const body = await response.clone().text();
  expect(await answer(response)).toEqual({ status: 500, version: "registry/2.0", code: "UNKNOWN" });
  expect(body).not.toContain("EIO");
  expect(logged).toHaveLength(1);
  expect(logged[0]).toContain("unexpected error");
  expect(logged[0]).toContain("EIO: secret internal detail");
});

test("a client that left gets nothing to read and nothing is logged", () => {
  logged.length = 0;
  const controller = new AbortController();
  controller.abort();
  const response = errorResponse("UNKNOWN", new Error("stream closed"), new Request("http://docxy.test/v2/x", { signal: controller.signal }), log);
  expect([response.status, response.body]).toEqual([499, null]);
  expect(logged).toEqual([]);
});

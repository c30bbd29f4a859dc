import { expect, test } from "bun:test";
import { errorResponse, registryErrorResponse } from "../../src/http/errors";
import { RegistryError } from "../../src/oci/errors";
import { createLogger } from "../../src/observability/logger";
import { parsePullPath } from "../../src/proxy/pull-path";

const API_VERSION = ["docker-distribution-api-version", "registry/2.0"];

/** What the HTTP edge answers for the error `parsePullPath(rest)` raises. */
function answerFor(rest: string, method: string): Response {
  try {
    parsePullPath(rest);
  } catch (error) {
    return registryErrorResponse(error as RegistryError, method);
  }
  throw new Error(`${rest} parsed`);
}

test.each(["GET", "HEAD"])("%s of a manifest reference that is no tag (the conformance suite's .INVALID_MANIFEST_NAME) is 404 MANIFEST_UNKNOWN", async (method) => {
  const response = answerFor("conformance/test/manifests/.INVALID_MANIFEST_NAME", method);
  expect(response.status).toBe(404);
  expect(response.headers.get(API_VERSION[0]!)).toBe(API_VERSION[1]!);
  const body = await response.text();
  if (method === "HEAD") expect(body).toBe("");
  else expect(JSON.parse(body).errors[0].code).toBe("MANIFEST_UNKNOWN");
});

test("every error docxy answers itself names the API version, its own headers kept", async () => {
  const log = createLogger("error", () => {});
  const request = new Request("http://docxy.test/v2/x/y");
  const answers = [
    registryErrorResponse(new RegistryError("UNSUPPORTED", "pull-only", { headers: { allow: "GET, HEAD" } }), "PUT"),
    answerFor(`x/blobs/sha256:${"A".repeat(64)}`, "GET"),
    errorResponse("NOT_FOUND", new Error("no route"), request, log),
    errorResponse("UNKNOWN", new Error("boom"), request, log),
  ];
  expect(answers.map((r) => [r.status, r.headers.get(API_VERSION[0]!)])).toEqual([
    [405, "registry/2.0"],
    [400, "registry/2.0"],
    [404, "registry/2.0"],
    [500, "registry/2.0"],
  ]);
  expect(answers[0]!.headers.get("allow")).toBe("GET, HEAD");
});

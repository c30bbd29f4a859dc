import { expect, test } from "bun:test";
import { ERROR_STATUS, RegistryError } from "../../src/oci/errors";

test("a RegistryError carries its code's usual status unless told otherwise", () => {
  const error = new RegistryError("BLOB_UNKNOWN", "not here");
  expect([error.ociCode, error.status, error.message, error.detail, error.headers, error.name]).toEqual(["BLOB_UNKNOWN", 404, "not here", null, {}, "RegistryError"]);
  const cause = new Error("ECONNREFUSED");
  const upstream = new RegistryError("UNAVAILABLE", "upstream down", { status: 504, detail: { upstream: "x" }, headers: { "retry-after": "5" }, cause });
  expect([upstream.status, upstream.detail, upstream.headers, upstream.cause]).toEqual([504, { upstream: "x" }, { "retry-after": "5" }, cause]);
});

test("its code is not named `code`, which Elysia would read as its own error kind", () => {
  expect("code" in new RegistryError("DENIED", "no")).toBe(false);
});

test("statuses follow distribution's errcode table", () => {
  expect(ERROR_STATUS).toMatchObject({ NAME_INVALID: 400, UNAUTHORIZED: 401, DENIED: 403, MANIFEST_UNKNOWN: 404, UNSUPPORTED: 405, TOOMANYREQUESTS: 429, UNKNOWN: 500, UNAVAILABLE: 503 });
});

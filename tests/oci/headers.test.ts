import { expect, test } from "bun:test";
import { FORWARDED_REQUEST_HEADERS, withoutHopByHop } from "../../src/oci/headers";

test("hop-by-hop headers, and those Connection names, are not forwarded; the rest is, unchanged", () => {
  const headers = new Headers({
    connection: "keep-alive, x-private-hop",
    "keep-alive": "timeout=5",
    "transfer-encoding": "chunked",
    "proxy-authorization": "Basic eA==",
    te: "trailers",
    trailer: "x",
    upgrade: "h2c",
    "x-private-hop": "1",
    "content-type": "application/json",
    "docker-content-digest": "sha256:abc",
  });
  expect(Object.fromEntries(withoutHopByHop(headers))).toEqual({ "content-type": "application/json", "docker-content-digest": "sha256:abc" });
  expect(headers.get("transfer-encoding")).toBe("chunked"); // a copy: the original is left alone
});

test("a pull forwards credentials, content negotiation and the headers that resume a layer", () => {
  expect(FORWARDED_REQUEST_HEADERS).toEqual(["authorization", "accept", "range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]);
});

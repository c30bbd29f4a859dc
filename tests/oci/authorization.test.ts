import { expect, test } from "bun:test";
import { bearerToken } from "../../src/oci/authorization";

test.each([
  ["Bearer abc.def-ghi", "abc.def-ghi"],
  ["bearer abc", "abc"],
  ["BEARER   abc  ", "abc"],
  ["Bearer docxy-offline.h4ndle", "docxy-offline.h4ndle"],
  ["Bearer", undefined],
  ["Bearer ", undefined],
  ["Bearer a b", undefined],
  ["Basic YTpi", undefined],
  ["Token abc", undefined],
  ["", undefined],
  [null, undefined],
])("%p → %p", (header, token) => expect(bearerToken(header)).toBe(token as never));

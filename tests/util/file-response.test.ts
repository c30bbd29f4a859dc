import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileOf, fileResponse } from "../../src/util/file-response";
import { removeAtExit } from "../support/cleanup";

const dir = mkdtempSync(join(tmpdir(), "docxy-file-response-"));
removeAtExit(dir);
const path = join(dir, "blob");
writeFileSync(path, "0123456789");

test("the edge finds the file behind the response; a reader gets the same range as a stream", async () => {
  let released = 0;
  const response = fileResponse({ path, start: 3, end: 6, done: () => released++ }, { status: 206, headers: { "content-range": "bytes 3-6/10" } });
  expect(response.status).toBe(206);
  expect(response.headers.get("content-range")).toBe("bytes 3-6/10");
  const file = fileOf(response)!;
  expect([file.path, file.start, file.end]).toEqual([path, 3, 6]);
  expect(await response.text()).toBe("3456");
  expect(released).toBe(1);
  file.done(); // the edge calls it too once sent: still once in all
  expect(released).toBe(1);
});

test("an ordinary response has no file behind it", () => {
  expect(fileOf(new Response("x"))).toBeUndefined();
});

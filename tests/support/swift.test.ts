// The Swift harness serves what the S3 storage needs (fleet.md §1) through Bun's own S3 client,
// counts the requests clients made, and its proxy can be killed and restarted mid-test.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startSwift, type Swift } from "./swift";

let swift: Swift;
let s3: Bun.S3Client;
beforeAll(async () => {
  swift = await startSwift();
  await swift.createBucket("harness");
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  s3 = new Bun.S3Client({ endpoint, accessKeyId, secretAccessKey, region, bucket: "harness" });
}, 120_000);
afterAll(() => swift?.stop());

function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  return bytes;
}

describe("startSwift", () => {
  test("put, ranged get, list, delete round trip through Bun.S3Client", async () => {
    const body = pattern(300_000);
    await s3.write("dir/one", body);
    await s3.write("dir/two", "2");

    expect(Buffer.from(await s3.file("dir/one").bytes()).equals(Buffer.from(body))).toBe(true);
    const slice = await s3.file("dir/one").slice(1000, 70_000).bytes();
    expect(Buffer.from(slice).equals(Buffer.from(body.subarray(1000, 70_000)))).toBe(true);
    expect((await s3.file("dir/one").stat()).size).toBe(300_000);

    const listed = await s3.list({ prefix: "dir/" });
    expect(listed.contents?.map(({ key, size }) => [key, size])).toEqual([
      ["dir/one", 300_000],
      ["dir/two", 1],
    ]);

    await s3.delete("dir/one");
    expect(await s3.file("dir/one").exists()).toBe(false);
    expect((await s3.list({ prefix: "dir/" })).contents?.map(({ key }) => key)).toEqual(["dir/two"]);
  });

  test("requests() lists what clients sent, with the S3 paths and statuses", async () => {
    swift.clearRequests();
    await s3.write("counted", "x");
    await s3.file("counted").text();
    await s3.file("missing").exists();
    expect(await swift.requests()).toEqual([
      { method: "PUT", path: "/harness/counted", status: 200 },
      { method: "GET", path: "/harness/counted", status: 200 },
      { method: "HEAD", path: "/harness/missing", status: 404 },
    ]);
  });

  test("a killed proxy refuses connections; restarted, it serves the same objects", async () => {
    await s3.write("kept", "still here");
    await swift.killProxy();
    await expect(s3.file("kept").text()).rejects.toThrow();
    await swift.restartProxy();
    expect(await s3.file("kept").text()).toBe("still here");
  }, 30_000);
});

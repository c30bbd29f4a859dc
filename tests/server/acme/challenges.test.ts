/** HTTP-01 answers in front of the plain-HTTP app (challenges.ts). */
import { describe, expect, test } from "bun:test";
import { Http01Challenges, withAcmeChallenges } from "../../../src/server/acme/challenges";

describe("withAcmeChallenges", () => {
  const challenges = new Http01Challenges();
  challenges.add("tok-en_1", "tok-en_1.thumbprint");
  const handler = withAcmeChallenges((token) => challenges.response(token), () => new Response("from the app", { status: 404 }));
  const call = (path: string, method = "GET") => Promise.resolve(handler(new Request(`http://docxy.test${path}`, { method })));

  test("answers a pending token with its key authorization", async () => {
    const response = await call("/.well-known/acme-challenge/tok-en_1");
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("tok-en_1.thumbprint");
    expect(response.headers.get("content-length")).toBe(String("tok-en_1.thumbprint".length));
    const head = await call("/.well-known/acme-challenge/tok-en_1", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBeNull();
  });

  test("leaves everything else to the app", async () => {
    expect(await (await call("/.well-known/acme-challenge/unknown")).text()).toBe("from the app");
    expect(await (await call("/.well-known/acme-challenge/tok-en_1", "POST")).text()).toBe("from the app");
    expect(await (await call("/v2/")).text()).toBe("from the app");
  });

  test("forgets a token once its challenge is done", async () => {
    challenges.add("done", "done.thumbprint");
    challenges.remove("done");
    expect(challenges.response("done")).toBeUndefined();
  });
});

import { expect, test } from "bun:test";
import { createServer } from "node:net";
import { onEveryInterface } from "../../src/server/every-interface";

const failing = (code: string) => Object.assign(new Error(code), { code });

test("'::' first: one dual-stack socket where the host has IPv6", async () => {
  const tried: string[] = [];
  expect(await onEveryInterface((host) => (tried.push(host), host))).toBe("::");
  expect(tried).toEqual(["::"]);
});

test("0.0.0.0 when the host has no IPv6; any other failure is the caller's", async () => {
  for (const code of ["EAFNOSUPPORT", "EADDRNOTAVAIL"]) {
    const tried: string[] = [];
    const host = await onEveryInterface(async (h) => {
      tried.push(h);
      if (h === "::") throw failing(code);
      return h;
    });
    expect([host, tried]).toEqual(["0.0.0.0", ["::", "0.0.0.0"]]);
  }
  await expect(onEveryInterface(() => Promise.reject(failing("EADDRINUSE")))).rejects.toThrow("EADDRINUSE");
});

test("a real listener binds on every interface", async () => {
  const server = createServer();
  const address = await onEveryInterface(
    (host) =>
      new Promise<string>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ port: 0, host }, () => resolve(host));
      }),
  );
  expect(["::", "0.0.0.0"]).toContain(address);
  await new Promise((resolve) => server.close(resolve));
});

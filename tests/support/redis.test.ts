// The Redis harness runs a real redis-server that Bun's client can use, and that kill/restart
// really take down and bring back on the same URL (what the fleet's outage tests rely on).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Redis, startRedis } from "./redis";

let redis: Redis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis?.stop());

describe("startRedis", () => {
  test("SET NX PX has exactly one winner among concurrent callers on separate connections", async () => {
    const clients = Array.from({ length: 8 }, () => new Bun.RedisClient(redis.url));
    try {
      const results = await Promise.all(clients.map((client, i) => client.send("SET", ["lease:blob", `node-${i}`, "NX", "PX", "60000"])));
      const winners = results.filter((result) => result === "OK");
      expect(winners).toHaveLength(1);
      const owner = await clients[0]?.get("lease:blob");
      expect(owner).toBe(`node-${results.indexOf("OK")}`);
      expect(Number(await clients[0]?.send("PTTL", ["lease:blob"]))).toBeGreaterThan(0); // the PX was applied
    } finally {
      for (const client of clients) client.close();
    }
  });

  test("kill drops the server and restart brings back an empty one on the same URL", async () => {
    const before = new Bun.RedisClient(redis.url);
    await before.set("survives", "no");
    before.close();

    await redis.kill();
    const offline = new Bun.RedisClient(redis.url, { enableOfflineQueue: false, autoReconnect: false });
    await expect(offline.get("survives")).rejects.toThrow();
    await redis.restart();

    const after = new Bun.RedisClient(redis.url);
    try {
      expect(await after.get("survives")).toBeNull(); // nothing persisted
      expect(await after.send("CONFIG", ["GET", "appendonly"])).toEqual({ appendonly: "no" }); // RESP3: a map
    } finally {
      after.close();
      offline.close();
    }
  });
});

import { expect, test } from "bun:test";
import { bearsAdminToken } from "../../src/http/admin-token";

const TOKEN = "admin-token-for-tests-0123456789";
const bearing = (authorization?: string) => new Request("http://127.0.0.1:5000/admin/cache", { headers: authorization ? { authorization } : {} });

test("only the configured token as a Bearer header counts", () => {
  expect(bearsAdminToken(bearing(`Bearer ${TOKEN}`), TOKEN)).toBe(true);
  expect(bearsAdminToken(bearing(`bearer ${TOKEN}  `), TOKEN)).toBe(true);
  expect(bearsAdminToken(bearing(`Bearer ${TOKEN}x`), TOKEN)).toBe(false);
  expect(bearsAdminToken(bearing(`Bearer ${TOKEN.slice(0, -1)}`), TOKEN)).toBe(false);
  expect(bearsAdminToken(bearing(`Basic ${TOKEN}`), TOKEN)).toBe(false);
  expect(bearsAdminToken(bearing(), TOKEN)).toBe(false);
});

test("without a configured token nothing counts, not even an empty one", () => {
  expect(bearsAdminToken(bearing("Bearer "), "")).toBe(false);
  expect(bearsAdminToken(bearing("Bearer x"), "")).toBe(false);
});

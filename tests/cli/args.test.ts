import { expect, test } from "bun:test";
import { parseArgs, UsageError } from "../../src/cli/args";

test("Wharf's flag forms are accepted", () => {
  expect(parseArgs(["-c", "a.toml"]).configPath).toBe("a.toml");
  expect(parseArgs(["--config=b.toml"]).configPath).toBe("b.toml");
  expect(parseArgs(["-c=c.toml"]).configPath).toBe("c.toml");
  expect(parseArgs(["--log-level", "debug"]).overrides).toEqual({ "log.level": "debug" });
  expect(parseArgs(["-h", "--nope"]).help).toBe(true);
});

test("settings flags become config overrides", () => {
  expect(parseArgs(["--http-port", "8080", "--bind=127.0.0.1,::1", "--public-base-url", "https://x"]).overrides).toEqual({
    "server.http_port": "8080",
    "server.bind": "127.0.0.1,::1",
    "server.public_base_url": "https://x",
  });
});

test("unknown options and missing values are usage errors", () => {
  expect(() => parseArgs(["--nope"])).toThrow(UsageError);
  expect(() => parseArgs(["--config"])).toThrow(UsageError);
  expect(() => parseArgs(["--config", "--bind"])).toThrow(UsageError);
  expect(() => parseArgs(["--config="])).toThrow(UsageError);
});

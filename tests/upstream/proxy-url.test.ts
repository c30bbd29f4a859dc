import { expect, test } from "bun:test";
import { parseProxyUrl, redactUrls } from "../../src/upstream/proxy-url";

test("http, https, socks5 and socks5h parse into a display form without the credentials", () => {
  expect(parseProxyUrl("http://alice:s3cr%40t@proxy.corp:3128")).toEqual({
    url: "http://alice:s3cr%40t@proxy.corp:3128",
    display: "http://proxy.corp:3128",
    socks: false,
    remoteDns: false,
    host: "proxy.corp",
    port: 3128,
    username: "alice",
    password: "s3cr@t",
  });
  expect(parseProxyUrl("https://proxy.corp").display).toBe("https://proxy.corp:443");
  expect(parseProxyUrl("http://proxy.corp/").port).toBe(80);
  expect(parseProxyUrl("socks5://bob:pw@10.0.0.1")).toMatchObject({ display: "socks5://10.0.0.1:1080", socks: true, remoteDns: false, username: "bob", password: "pw" });
  expect(parseProxyUrl("socks5h://[::1]:9050")).toMatchObject({ display: "socks5h://[::1]:9050", host: "::1", socks: true, remoteDns: true });
});

test("other schemes, paths and non-URLs are refused with the fix, never echoing the password", () => {
  for (const [raw, says] of [
    ["socks4://u:hunter2@proxy:1080", 'scheme "socks4" is not supported: use http://, https://, socks5://, socks5h://'],
    ["ftp://u:hunter2@proxy", 'scheme "ftp" is not supported'],
    ["http://u:hunter2@proxy:3128/path", "no path or query"],
    ["u:hunter2@proxy:3128", "must be a URL like http://user:pass@proxy.example.com:3128"],
  ] as const) {
    let message = "";
    try {
      parseProxyUrl(raw);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(says);
    expect(message).not.toContain("hunter2");
  }
});

test("redactUrls hides user:pass@ in every URL of a text, and leaves the rest alone", () => {
  expect(redactUrls('proxy "http://alice:pw@proxy:3128" and socks5h://bob@host:1 failed')).toBe('proxy "http://***@proxy:3128" and socks5h://***@host:1 failed');
  expect(redactUrls("upstream https://registry-1.docker.io/v2/ is down; mail ops@example.com")).toBe(
    "upstream https://registry-1.docker.io/v2/ is down; mail ops@example.com",
  );
});

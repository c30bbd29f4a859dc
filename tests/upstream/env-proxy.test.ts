import { expect, test } from "bun:test";
import { envProxies, envProxyFor } from "../../src/upstream/env-proxy";

const via = (url: string, env: Record<string, string>) => envProxyFor(new URL(url), env)?.display;

test("HTTPS_PROXY for https, HTTP_PROXY for http, ALL_PROXY for either; lowercase wins; a bare host:port means http", () => {
  expect(via("https://ghcr.io/v2/", { HTTPS_PROXY: "http://p:3128", HTTP_PROXY: "http://q:3128" })).toBe("http://p:3128");
  expect(via("http://mirror.local/v2/", { HTTPS_PROXY: "http://p:3128", HTTP_PROXY: "http://q:3128" })).toBe("http://q:3128");
  expect(via("https://ghcr.io/v2/", { ALL_PROXY: "socks5h://s:1080" })).toBe("socks5h://s:1080");
  expect(via("https://ghcr.io/v2/", { https_proxy: "http://lower:1", HTTPS_PROXY: "http://upper:1" })).toBe("http://lower:1");
  expect(via("https://ghcr.io/v2/", { HTTPS_PROXY: "proxy.corp:3128" })).toBe("http://proxy.corp:3128");
  expect(via("https://ghcr.io/v2/", {})).toBeUndefined();
});

test("NO_PROXY: *, exact names, domains with or without a leading dot, ports, IPv6; loopback is not exempt by itself", () => {
  const env = (no_proxy: string) => ({ HTTPS_PROXY: "http://p:3128", HTTP_PROXY: "http://p:3128", NO_PROXY: no_proxy });
  expect(via("https://ghcr.io/", env("*"))).toBeUndefined();
  expect(via("https://ghcr.io/", env("quay.io, ghcr.io"))).toBeUndefined();
  expect(via("https://pkg.ghcr.io/", env(".ghcr.io"))).toBeUndefined();
  expect(via("https://pkg.ghcr.io/", env("ghcr.io"))).toBeUndefined();
  expect(via("https://notghcr.io/", env("ghcr.io"))).toBe("http://p:3128");
  expect(via("http://registry.local:5000/", env("registry.local:5000"))).toBeUndefined();
  expect(via("http://registry.local:5001/", env("registry.local:5000"))).toBe("http://p:3128");
  expect(via("http://[::1]:5000/", env("::1"))).toBeUndefined();
  expect(via("http://[::1]:5000/", env("[::1]:5000"))).toBeUndefined();
  expect(via("http://127.0.0.1:5000/", env("localhost"))).toBe("http://p:3128");
});

test("envProxies lists what is set for check-config, and the problem of a bad one without its password", () => {
  expect(envProxies({ HTTPS_PROXY: "http://u:pw@p:3128", http_proxy: "socks4://u:pw@s:1" })).toEqual([
    { name: "HTTPS_PROXY", proxy: expect.objectContaining({ display: "http://p:3128" }) },
    { name: "http_proxy", problem: expect.stringContaining('scheme "socks4" is not supported') },
  ]);
  expect(JSON.stringify(envProxies({ http_proxy: "socks4://u:pw@s:1" }))).not.toContain("pw");
});

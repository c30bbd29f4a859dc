import { expect, test } from "bun:test";
import { hostname } from "node:os";
import { PublicOrigin } from "../../src/auth/public-origin";

const origin = new PublicOrigin(["hub.example.com"], ["127.0.0.1", "::1", "10.1.2.3"]);
const plain = (host: string | null) => ({ host, secure: false, localPort: 5000 });

test("a configured public_base_url always wins, whatever the Host says", () => {
  expect(origin.resolve("https://docxy.example.com", plain("evil.test"))).toBe("https://docxy.example.com");
});

test("a Host naming this machine is used as is", () => {
  expect(origin.resolve(undefined, plain("localhost:5000"))).toBe("http://localhost:5000");
  expect(origin.resolve(undefined, plain("127.0.0.1:5000"))).toBe("http://127.0.0.1:5000");
  expect(origin.resolve(undefined, plain("[::1]:5000"))).toBe("http://[::1]:5000");
  expect(origin.resolve(undefined, plain(`${hostname()}:5000`))).toBe(`http://${hostname().toLowerCase()}:5000`);
  expect(origin.resolve(undefined, plain("HUB.example.com"))).toBe("http://hub.example.com");
  expect(origin.resolve(undefined, { host: "10.1.2.3", secure: true, localPort: 443 })).toBe("https://10.1.2.3");
});

test("an attacker's Host (CVE-2025-63761) never becomes the realm: this machine's address is used", () => {
  for (const evil of ["evil.test", "evil.test:5000", 'a"b', "x/y", "", null, "localhost:99999", "127.0.0.1:0x10"]) {
    expect(origin.resolve(undefined, plain(evil))).toBe("http://10.1.2.3:5000");
  }
});

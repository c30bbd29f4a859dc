/**
 * The network policy: CIDR matching for both families and the mapped form,
 * allow and deny precedence, unknown addresses, invalid rules, and the client
 * address behind trusted proxies (spoofed headers ignored, chains walked from
 * the right).
 */
import { describe, expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { AddressSet, normalizeAddress } from "../../src/policy/address";
import { NetworkPolicy } from "../../src/policy/network";

const errorOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error as RegistryError;
  }
  throw new Error("expected an error");
};

/** [rule, address, matches] */
const CIDR_CASES: [string, string, boolean][] = [
  // IPv4 prefixes
  ["10.0.0.0/8", "10.1.2.3", true],
  ["10.0.0.0/8", "11.0.0.1", false],
  ["10.1.2.3/8", "10.200.0.1", true], // host bits under the prefix are ignored
  ["192.168.1.0/24", "192.168.1.255", true],
  ["192.168.1.0/24", "192.168.2.0", false],
  ["0.0.0.0/0", "203.0.113.9", true],
  ["0.0.0.0/0", "2001:db8::1", false], // an IPv4 rule never matches real IPv6
  ["1.2.3.4/32", "1.2.3.4", true],
  ["1.2.3.4/32", "1.2.3.5", false],
  ["1.2.3.4", "1.2.3.4", true], // a bare address is a /32
  ["1.2.3.4", "1.2.3.40", false],
  // IPv6 prefixes, in any spelling
  ["2001:db8::/32", "2001:db8:ffff::1", true],
  ["2001:db8::/32", "2001:0DB8:0000::0001", true],
  ["2001:db8::/32", "2001:db9::1", false],
  ["::/0", "2001:db8::1", true],
  ["::/0", "::1", true],
  ["::/0", "8.8.8.8", false], // ::/0 is all IPv6, not IPv4 too
  ["::/0", "::ffff:8.8.8.8", false], // mapped is IPv4
  ["::1/128", "::1", true],
  ["::1/128", "0:0:0:0:0:0:0:1", true],
  ["::1/128", "::2", false],
  ["::1", "::1", true], // a bare address is a /128
  ["fe80::/10", "febf::1", true],
  ["fe80::/10", "fec0::1", false],
  ["fe80::/10", "fe80::1%eth0", true], // the zone names our interface, not the client
  // IPv4-mapped IPv6 is the IPv4 address it carries, on either side
  ["10.0.0.0/8", "::ffff:10.1.2.3", true],
  ["10.0.0.0/8", "::FFFF:10.1.2.3", true],
  ["10.0.0.0/8", "::ffff:a01:203", true], // the same, in hex
  ["10.0.0.0/8", "::ffff:b01:203", false],
  ["::ffff:10.0.0.0/104", "10.9.8.7", true],
  ["::ffff:10.0.0.0/104", "11.9.8.7", false],
  ["::ffff:1.2.3.4", "1.2.3.4", true],
  ["::ffff:0:0/96", "203.0.113.9", true],
  ["::ffff:0:0/96", "2001:db8::1", false],
  // not an IP address: matches nothing
  ["0.0.0.0/0", "localhost", false],
  ["::/0", "[::1]", false],
];

test.each(CIDR_CASES)("%p contains %p: %p", (rule, address, matches) => {
  const normalized = normalizeAddress(address);
  expect(normalized !== null && new AddressSet([rule], "test").has(normalized)).toBe(matches);
});

test("addresses are normalized: mapped IPv6 to IPv4, IPv6 lowercased, anything else null", () => {
  expect(normalizeAddress("::ffff:127.0.0.1")).toBe("127.0.0.1");
  expect(normalizeAddress("::ffff:7f00:1")).toBe("127.0.0.1");
  expect(normalizeAddress("2001:DB8::1")).toBe("2001:db8::1");
  expect(normalizeAddress("::127.0.0.1")).toBe("::127.0.0.1"); // IPv4-compatible (deprecated) is not mapped
  for (const text of ["", "1.2.3", "01.2.3.4", "1.2.3.4:80", "[::1]", "::1:80:", "example.com", " 1.2.3.4"]) {
    expect(normalizeAddress(text)).toBeNull();
  }
});

test("an invalid network is a readable error naming the entry and the setting", () => {
  for (const [entry, why] of [
    ["10.0.0.0/33", "prefix length must be 0 to 32"],
    ["2001:db8::/129", "prefix length must be 0 to 128"],
    ["10.0.0.0/", "prefix length"],
    ["10.0.0.0/-1", "prefix length"],
    ["10.0.0.0/8/8", "expected an IP address or CIDR"],
    ["10.0.0/8", "expected an IP address or CIDR"],
    ["example.com", "expected an IP address or CIDR"],
  ]) {
    expect(() => new NetworkPolicy({ allow: [], deny: [entry!], trustedProxies: [] })).toThrow(
      `invalid network ${JSON.stringify(entry)} in deny: `,
    );
    expect(() => new AddressSet([entry!], "deny")).toThrow(why!);
  }
});

describe("check", () => {
  const policy = new NetworkPolicy({ allow: ["10.0.0.0/8", "2001:db8::/32"], deny: ["10.6.6.0/24", "2001:db8:bad::/48"], trustedProxies: [] });

  test("allowed networks pass, deny wins over allow, everything else is refused", () => {
    for (const address of ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1"]) expect(() => policy.check(address)).not.toThrow();
    for (const address of ["10.6.6.6", "::ffff:10.6.6.6", "2001:db8:bad::1", "192.0.2.1", "2001:db9::1"]) {
      const error = errorOf(() => policy.check(address));
      expect(error).toBeInstanceOf(RegistryError);
      expect(error.ociCode).toBe("DENIED");
      expect(error.status).toBe(403);
    }
    expect(errorOf(() => policy.check("10.6.6.6")).message).toContain("10.6.6.6 is in the denied networks");
    expect(errorOf(() => policy.check("::ffff:192.0.2.1")).message).toContain("192.0.2.1 is not in the allowed networks");
  });

  test("an empty allow list lets everyone in but the denied", () => {
    const denyOnly = new NetworkPolicy({ allow: [], deny: ["192.0.2.0/24"], trustedProxies: [] });
    expect(() => denyOnly.check("198.51.100.1")).not.toThrow();
    expect(() => denyOnly.check("2001:db8::1")).not.toThrow();
    expect(errorOf(() => denyOnly.check("192.0.2.1")).ociCode).toBe("DENIED");
  });

  test("an unknown address passes only when there are no rules", () => {
    expect(() => new NetworkPolicy({ allow: [], deny: [], trustedProxies: [] }).check("")).not.toThrow();
    const denyOnly = new NetworkPolicy({ allow: [], deny: ["192.0.2.0/24"], trustedProxies: [] });
    expect(errorOf(() => denyOnly.check("")).message).toContain("client address is unknown");
    expect(errorOf(() => policy.check("not-an-ip")).ociCode).toBe("DENIED");
  });
});

describe("clientAddress", () => {
  const policy = new NetworkPolicy({ allow: [], deny: [], trustedProxies: ["10.0.0.1", "172.16.0.0/12", "fd00::/8"] });

  test("X-Forwarded-For from an untrusted peer is ignored: anyone can write it", () => {
    expect(policy.clientAddress("203.0.113.9", "10.1.2.3")).toBe("203.0.113.9");
    expect(policy.clientAddress("203.0.113.9", "10.0.0.1, 10.1.2.3")).toBe("203.0.113.9");
    expect(policy.clientAddress("::ffff:203.0.113.9", "10.1.2.3")).toBe("203.0.113.9");
    expect(policy.clientAddress("2001:db8::9", "10.1.2.3")).toBe("2001:db8::9");
  });

  test("no header: the socket peer, normalized", () => {
    expect(policy.clientAddress("10.0.0.1", null)).toBe("10.0.0.1");
    expect(policy.clientAddress("::ffff:198.51.100.7", null)).toBe("198.51.100.7");
    expect(policy.clientAddress("2001:DB8::7", null)).toBe("2001:db8::7");
  });

  test("a trusted chain is walked from the right to the first untrusted address", () => {
    // The client claims 1.1.1.1; the edge proxy saw 198.51.100.7 and appended it.
    expect(policy.clientAddress("10.0.0.1", "1.1.1.1, 198.51.100.7")).toBe("198.51.100.7");
    // Two trusted hops in front of the peer are skipped.
    expect(policy.clientAddress("10.0.0.1", "1.1.1.1, 198.51.100.7, 172.16.5.5, 172.20.0.1")).toBe("198.51.100.7");
    expect(policy.clientAddress("::ffff:10.0.0.1", "2001:db8::7,fd00::1")).toBe("2001:db8::7");
    expect(policy.clientAddress("fd00::2", "::ffff:198.51.100.7")).toBe("198.51.100.7");
    // several X-Forwarded-For headers arrive joined by ", "
    expect(policy.clientAddress("10.0.0.1", "1.1.1.1, 198.51.100.7, 172.16.5.5")).toBe("198.51.100.7");
  });

  test("when every entry is a trusted proxy, the leftmost is the client", () => {
    expect(policy.clientAddress("10.0.0.1", "172.16.0.9, 172.16.0.8")).toBe("172.16.0.9");
  });

  test("a malformed entry on the walk means the socket peer", () => {
    expect(policy.clientAddress("10.0.0.1", "unknown")).toBe("10.0.0.1");
    expect(policy.clientAddress("10.0.0.1", "")).toBe("10.0.0.1");
    expect(policy.clientAddress("10.0.0.1", "198.51.100.7:1234")).toBe("10.0.0.1");
    expect(policy.clientAddress("10.0.0.1", "1.1.1.1, garbage, 172.16.0.9")).toBe("10.0.0.1");
    expect(policy.clientAddress("10.0.0.1", "198.51.100.7,,172.16.0.9")).toBe("10.0.0.1");
    expect(policy.clientAddress("10.0.0.1", "garbage, 172.16.0.9")).toBe("10.0.0.1");
    // left of the first untrusted address is never read, so garbage there does not matter
    expect(policy.clientAddress("10.0.0.1", "garbage, 198.51.100.7")).toBe("198.51.100.7");
  });

  test("an unknown socket address comes back as it is, and the header is not believed", () => {
    expect(policy.clientAddress("", "198.51.100.7")).toBe("");
  });
});

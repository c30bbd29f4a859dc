/** Addresses as the policies compare them, and sets of networks (network.test.ts has the policies built on them). */
import { describe, expect, test } from "bun:test";
import { AddressSet, ipv6Groups, normalizeAddress } from "../../src/policy/address";

describe("normalizeAddress", () => {
  test.each([
    ["10.1.2.3", "10.1.2.3"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["::FFFF:a01:203", "10.1.2.3"],
    ["0:0:0:0:0:ffff:0a01:0203", "10.1.2.3"],
    ["2001:DB8::1", "2001:db8::1"],
    ["fe80::1%eth0", "fe80::1"],
    ["::1", "::1"],
    ["::ffff:0:10.1.2.3", "::ffff:0:10.1.2.3"], // SIIT, not the mapped range
    ["localhost", null],
    ["10.1.2", null],
    ["", null],
  ])("%p → %p", (text, normalized) => expect(normalizeAddress(text)).toBe(normalized));
});

test("ipv6Groups expands `::` and dotted tails into eight groups", () => {
  expect(ipv6Groups("2001:db8::1")).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
  expect(ipv6Groups("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  expect(ipv6Groups("::ffff:10.1.2.3")).toEqual([0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203]);
  expect(ipv6Groups("1:2:3:4:5:6:7:8")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  expect(ipv6Groups("fe80::")).toEqual([0xfe80, 0, 0, 0, 0, 0, 0, 0]);
});

describe("AddressSet", () => {
  test("CIDRs and single addresses, each checked against its own family only", () => {
    const set = new AddressSet(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::/0"], "access.allow");
    expect(set.size).toBe(4);
    const members = ["10.255.0.1", "192.168.1.7", "2001:db8:ffff::1", "fe80::1"];
    const outsiders = ["11.0.0.1", "192.168.1.8"]; // `::/0` is every IPv6 address, not every IPv4 one
    expect(members.map((a) => set.has(a))).toEqual([true, true, true, true]);
    expect(outsiders.map((a) => set.has(a))).toEqual([false, false]);
  });

  test("a rule in the mapped range is the IPv4 rule it spells; host bits under the prefix are ignored", () => {
    const mapped = new AddressSet(["::ffff:10.0.0.0/104"], "access.deny");
    expect([mapped.has("10.9.9.9"), mapped.has("11.0.0.1")]).toEqual([true, false]);
    const sloppy = new AddressSet(["10.1.2.3/8"], "access.deny");
    expect(sloppy.has("10.200.0.1")).toBe(true);
  });

  test.each([
    ["10.0.0.0/33", "the prefix length must be 0 to 32"],
    ["2001:db8::/129", "the prefix length must be 0 to 128"],
    ["10.0.0.0/x", "the prefix length must be 0 to 32"],
    ["10.0.0.0/8/8", "expected an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32"],
    ["example.com", "expected an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32"],
  ])("%p is refused with a message naming it and the setting", (entry, why) => {
    expect(() => new AddressSet([entry], "access.allow")).toThrow(`invalid network ${JSON.stringify(entry)} in access.allow: ${why}`);
  });
});

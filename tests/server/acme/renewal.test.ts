/** The renewal policy (renewal.ts) on certificates made with openssl, no CA involved. */
import { beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { coversNames, renewalTime, whyIssueNow } from "../../../src/server/acme/renewal";
import { selfSignedCert } from "../../support/certs";

let ipCert: X509Certificate; // SAN IP:127.0.0.1, valid 2 days
beforeAll(async () => {
  ipCert = new X509Certificate(readFileSync((await selfSignedCert("ec", "127.0.0.1")).cert));
});

const DIRECTORY = "https://acme.test/dir";

describe("renewalTime", () => {
  test("is when a third of the lifetime is left, by default", () => {
    const from = ipCert.validFromDate.getTime();
    const to = ipCert.validToDate.getTime();
    expect(renewalTime(ipCert).getTime()).toBe(to - (to - from) / 3);
    expect(renewalTime(ipCert, 0.5).getTime()).toBe(to - (to - from) / 2);
  });
});

describe("coversNames", () => {
  test("matches IP addresses against IP SANs and names against DNS SANs", () => {
    expect(coversNames(ipCert, ["127.0.0.1"])).toBe(true);
    expect(coversNames(ipCert, ["127.0.0.2"])).toBe(false);
    expect(coversNames(ipCert, ["127.0.0.1", "docxy.example.com"])).toBe(false);
  });
});

describe("whyIssueNow", () => {
  const wanted = { names: ["127.0.0.1"], directoryUrl: DIRECTORY };
  test("uses a stored certificate that is valid for the names and from the same CA", () => {
    expect(whyIssueNow({ certificate: ipCert, directoryUrl: DIRECTORY }, wanted)).toBeUndefined();
  });
  test("a stored certificate due for renewal still serves (renewal runs in the background)", () => {
    const due = new Date(renewalTime(ipCert).getTime() + 1000);
    expect(whyIssueNow({ certificate: ipCert, directoryUrl: DIRECTORY }, wanted, due)).toBeUndefined();
  });
  test("orders when nothing usable is stored", () => {
    expect(whyIssueNow(undefined, wanted)).toBe("no certificate stored");
    const after = new Date(ipCert.validToDate.getTime() + 1000);
    expect(whyIssueNow({ certificate: ipCert, directoryUrl: DIRECTORY }, wanted, after)).toContain("expired");
    expect(whyIssueNow({ certificate: ipCert, directoryUrl: DIRECTORY }, { ...wanted, names: ["docxy.example.com"] })).toContain("does not cover");
    // e.g. moving from Let's Encrypt staging to production
    expect(whyIssueNow({ certificate: ipCert, directoryUrl: "https://staging.test/dir" }, wanted)).toContain("another ACME directory");
    expect(whyIssueNow({ certificate: ipCert, directoryUrl: undefined }, wanted)).toContain("another ACME directory");
  });
});

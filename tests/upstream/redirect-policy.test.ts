/**
 * The redirect policy on its own: which addresses are what, and which
 * redirects a request that started at a given upstream may follow. Names are
 * resolved for real (`localhost` from /etc/hosts, `.invalid` never resolves,
 * RFC 6761); the private upstreams are only ever judged, never contacted.
 */
import { expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { addressKind, checkRedirect, type AddressKind } from "../../src/upstream/redirect-policy";

test.each<[string, AddressKind]>([
  ["127.0.0.1", "loopback"],
  ["127.255.0.9", "loopback"],
  ["::1", "loopback"],
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["10.1.2.3", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.255", "private"],
  ["192.168.1.1", "private"],
  ["100.64.0.1", "private"],
  ["fd12:3456::1", "private"],
  ["::ffff:10.0.0.1", "private"],
  ["169.254.1.1", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["169.254.169.254", "metadata"],
  ["::ffff:169.254.169.254", "metadata"],
  ["fd00:ec2::254", "metadata"],
  ["100.100.100.200", "metadata"],
  ["64:ff9b::a9fe:a9fe", "metadata"], // NAT64 of 169.254.169.254
  ["2002:a00:1::", "private"], // 6to4 of 10.0.0.1
  ["0.0.0.0", "unusable"],
  ["0.1.2.3", "unusable"],
  ["::", "unusable"],
  ["::10.0.0.1", "unusable"],
  ["224.0.0.1", "unusable"],
  ["255.255.255.255", "unusable"],
  ["ff02::1", "unusable"],
  ["172.32.0.1", "public"],
  ["8.8.8.8", "public"],
  ["2606:4700::1111", "public"],
])("%s is %s", (address, kind) => {
  expect(addressKind(address)).toBe(kind);
});

const fromLoopback = { trusted: new URL("http://127.0.0.1:5000/v2/x/blobs/sha256:1"), allowPrivate: false };
const fromPrivate = { trusted: new URL("http://10.9.9.9:5000/v2/"), allowPrivate: false };

async function refusal(target: string, scope: Parameters<typeof checkRedirect>[1]): Promise<RegistryError> {
  const error = await checkRedirect(new URL(target), scope).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RegistryError)) throw new Error(`expected ${target} to be refused`);
  expect({ code: error.ociCode, status: error.status }).toEqual({ code: "UNAVAILABLE", status: 502 });
  return error;
}

test.each(["file:///etc/docxy/docxy.toml", "ftp://127.0.0.1/x", "data:text/plain,secret", "blob:http://127.0.0.1/x", "ws://127.0.0.1:5000/x"])(
  "%s is refused whatever the upstream",
  async (target) => {
    const error = await refusal(target, { ...fromLoopback, allowPrivate: true });
    expect(error.message).toContain("only http and https");
    expect(error.message).not.toContain("docxy.toml");
    expect(error.message).not.toContain("secret");
  },
);

test("from an upstream on loopback: loopback is fine (the test CDN), private, link-local and metadata are not", async () => {
  await checkRedirect(new URL("http://127.0.0.1:9999/cdn/blob"), fromLoopback);
  await checkRedirect(new URL("http://localhost:9999/cdn/blob"), fromLoopback);
  for (const target of ["http://10.0.0.1/", "http://192.168.0.1:8080/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[::ffff:10.0.0.1]/"]) {
    await refusal(target, fromLoopback);
  }
});

test("from an upstream on a private address: private is fine, a name resolving to loopback is not", async () => {
  await checkRedirect(new URL("http://10.1.1.1/blob"), fromPrivate);
  const error = await refusal("http://localhost:2375/containers/json?secret=1", fromPrivate);
  expect(error.message).toContain("http://localhost:2375");
  expect(error.message).toContain("loopback");
  expect(error.message).not.toContain("secret");
  await refusal("http://127.0.0.1:2375/", fromPrivate);
});

test("a redirect to the upstream's own host and port is followed whatever its address", async () => {
  const linkLocal = { trusted: new URL("http://169.254.10.10:5000/v2/"), allowPrivate: false };
  await checkRedirect(new URL("https://169.254.10.10:5000/v2/other"), linkLocal);
  await refusal("http://169.254.10.10:5001/", linkLocal);
});

test("allow_private_redirects opens loopback, private, link-local and metadata, never 0.0.0.0 or a non-HTTP scheme", async () => {
  const open = { ...fromPrivate, allowPrivate: true };
  for (const target of ["http://localhost:1/", "http://169.254.169.254/", "http://[fe80::1]/", "http://192.168.0.1/"]) {
    await checkRedirect(new URL(target), open);
  }
  await refusal("http://0.0.0.0:5000/", open);
  await refusal("http://[::]:5000/", open);
});

test("public addresses are followed from anywhere; metadata names and unresolvable names are refused", async () => {
  await checkRedirect(new URL("https://93.184.215.14/blob"), fromLoopback);
  await checkRedirect(new URL("https://[2606:4700::1111]/blob"), fromPrivate);
  expect((await refusal("http://metadata.google.internal/computeMetadata/v1/", fromLoopback)).message).toContain("metadata");
  expect((await refusal("http://no-such-host.invalid/", fromLoopback)).message).toContain("does not resolve");
});

test("through an outbound proxy, a name only the proxy can resolve is followed; literals and metadata names are still judged", async () => {
  const proxied = { ...fromLoopback, proxied: true };
  await checkRedirect(new URL("https://cdn.no-such-host.invalid/blob"), proxied);
  expect((await refusal("http://metadata.google.internal/computeMetadata/v1/", proxied)).message).toContain("metadata");
  expect((await refusal("http://169.254.169.254/latest/", proxied)).message).toContain("metadata");
  expect((await refusal("http://10.0.0.1/", proxied)).message).toContain("private");
});

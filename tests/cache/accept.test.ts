/** What a client's Accept says about manifests (cache/accept.ts), as Docker, containerd and containers/image send it. */
import { expect, test } from "bun:test";
import { acceptClass, accepts } from "../../src/cache/accept";

const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";

test("a type is accepted when listed (any case, parameters ignored) or when the client takes anything", () => {
  expect(accepts(`${DOCKER_MANIFEST}; q=0.9, ${OCI_INDEX}`, OCI_INDEX)).toBe(true);
  expect(accepts(DOCKER_MANIFEST.toUpperCase(), DOCKER_MANIFEST)).toBe(true);
  expect(accepts(`${DOCKER_MANIFEST}, */*`, OCI_INDEX)).toBe(true);
  expect(accepts(DOCKER_MANIFEST, OCI_INDEX)).toBe(false);
  expect(accepts(null, OCI_INDEX)).toBe(false);
});

test("the accept class names the manifest types taken, in a fixed order, whatever order the client sent", () => {
  expect(acceptClass(`${DOCKER_MANIFEST}, ${OCI_INDEX}`)).toBe(acceptClass(`${OCI_INDEX}, ${DOCKER_MANIFEST}`));
  expect(acceptClass(`${OCI_INDEX}, ${DOCKER_MANIFEST}`)).toBe(`${OCI_INDEX},${DOCKER_MANIFEST}`);
  expect(acceptClass(`${DOCKER_MANIFEST}, */*`)).toBe("*");
  expect(acceptClass("text/html")).toBe("none");
  expect(acceptClass(null)).toBe("none");
});

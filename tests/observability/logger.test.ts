import { expect, test } from "bun:test";
import { createLogger } from "../../src/observability/logger";

test("logfmt lines, quoted only when needed, below the level dropped", () => {
  const lines: string[] = [];
  const log = createLogger("info", (line) => lines.push(line));
  log.debug("hidden");
  log.info("request", { path: "/v2/library/x/manifests/latest", query: "ns=docker.io&n=1", status: 200, skipped: undefined });
  log.warn("two words", { reason: 'has "quotes"' });
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(/^time=\S+ level=info msg=request path=\/v2\/library\/x\/manifests\/latest query=ns=docker.io&n=1 status=200\n$/);
  expect(lines[1]).toContain('level=warn msg="two words" reason="has \\"quotes\\""');
});

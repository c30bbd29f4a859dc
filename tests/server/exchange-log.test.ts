/** A finished exchange reaches the metrics, the recent pulls and the access log with today's fields. */
import { expect, test } from "bun:test";
import type { RequestContext } from "../../src/http/request-context";
import { createAccessLog } from "../../src/observability/access-log";
import { Metrics } from "../../src/observability/metrics";
import { RecentPulls } from "../../src/observability/recent-pulls";
import { exchangeLog } from "../../src/server/exchange-log";
import type { Exchange } from "../../src/server/node-bridge";

function setup() {
  const metrics = new Metrics();
  const recentPulls = new RecentPulls();
  const lines: string[] = [];
  const record = exchangeLog({ metrics, recentPulls, logAccess: createAccessLog("json", (line) => lines.push(line)) });
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>).map(({ time: _, ...rest }) => rest);
  return { metrics, recentPulls, record, entries };
}

const context = (notes: RequestContext["notes"]): RequestContext => ({
  connection: { host: "docxy.test:5000", secure: false, localPort: 5000, remoteAddress: "::ffff:192.0.2.7" },
  notes,
});

const exchange = (over: Partial<Exchange>): Exchange => ({
  context: context({}),
  method: "GET",
  path: "/v2/library/alpine/manifests/3.20",
  query: "",
  status: 200,
  bytes: 1234,
  ms: 5,
  remoteAddress: "::ffff:192.0.2.7",
  complete: true,
  ...over,
});

test("a manifest GET: an access line with the noted client, user, registry and repository, a recent pull, a counted request", async () => {
  const { metrics, recentPulls, record, entries } = setup();
  const notes = { client: "192.0.2.7", user: "alice", registry: "docker.io", repository: "library/alpine" };
  record(exchange({ context: context(notes), cache: "HIT", query: "ns=docker.io" }));
  expect(entries()).toEqual([
    {
      level: "info",
      msg: "request",
      client: "192.0.2.7",
      user: "alice",
      method: "GET",
      path: "/v2/library/alpine/manifests/3.20",
      query: "ns=docker.io",
      registry: "docker.io",
      repository: "library/alpine",
      status: 200,
      bytes: 1234,
      ms: 5,
      cache: "HIT",
      complete: true,
    },
  ]);
  expect(recentPulls.list()).toEqual([
    { time: expect.any(String), client: "192.0.2.7", registry: "docker.io", repository: "library/alpine", reference: "3.20", status: 200, cache: "HIT" },
  ]);
  const requests = await metrics.requests.get();
  expect(requests.values).toEqual([{ labels: { route: "manifests", registry: "docker.io", status: "200" }, value: 1 }]);
});

test("an exchange no route noted is logged with the socket's address and is no recent pull", () => {
  const { recentPulls, record, entries } = setup();
  record(exchange({ path: "/nope", status: 404, bytes: 78, complete: false }));
  expect(entries()).toEqual([{ level: "info", msg: "request", client: "::ffff:192.0.2.7", method: "GET", path: "/nope", status: 404, bytes: 78, ms: 5, complete: false }]);
  expect(recentPulls.list()).toEqual([]);
});

test("a HEAD of a manifest or a blob GET is no recent pull", () => {
  const { recentPulls, record } = setup();
  const notes = { client: "192.0.2.7", registry: "docker.io", repository: "library/alpine" };
  record(exchange({ context: context(notes), method: "HEAD" }));
  record(exchange({ context: context(notes), path: "/v2/library/alpine/blobs/sha256:ab" }));
  expect(recentPulls.list()).toEqual([]);
});

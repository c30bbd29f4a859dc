/**
 * Where a finished exchange on a proxy or redirect port is recorded: the
 * request metrics, the status page's recent pulls (manifest GETs), and the
 * access log line.
 */
import type { AccessEntry } from "../observability/access-log";
import { routeOf, type Metrics } from "../observability/metrics";
import type { RecentPulls } from "../observability/recent-pulls";
import type { Exchange } from "./node-bridge";

export interface ExchangeSinks {
  metrics: Metrics;
  recentPulls: RecentPulls;
  logAccess: (entry: AccessEntry) => void;
}

export function exchangeLog({ metrics, recentPulls, logAccess }: ExchangeSinks): (exchange: Exchange) => void {
  return function record(exchange) {
    const { client, user, registry, repository, source } = exchange.context.notes;
    const route = routeOf(exchange.path);
    metrics.exchange(route, registry, exchange.status, exchange.bytes, exchange.cache);
    if (route === "manifests" && exchange.method === "GET" && registry && repository) {
      recentPulls.add({
        time: new Date().toISOString(),
        client: client ?? "",
        registry,
        repository,
        reference: exchange.path.slice(exchange.path.lastIndexOf("/") + 1),
        status: exchange.status,
        cache: exchange.cache ?? "",
      });
    }
    logAccess({
      // Requests refused before the app learnt the client (no route, a redirect) log the socket's.
      client: client ?? exchange.context.connection.remoteAddress,
      user,
      method: exchange.method,
      path: exchange.path,
      query: exchange.query || undefined,
      registry,
      repository,
      status: exchange.status,
      bytes: exchange.bytes,
      ms: exchange.ms,
      cache: exchange.cache,
      source,
      complete: exchange.complete,
    });
  };
}

/**
 * `/metrics` for Prometheus (text exposition format), under `[access]` like
 * the registry API. No metric is labelled with a repository (routeOf gives
 * route families); upstream account names do label the quota gauge, since
 * operators need to see which account runs dry, and those names are the
 * operator's own configuration.
 */
import { Elysia } from "elysia";
import type { Services } from "../../services";
import { admit } from "../guard";
import { contextOf } from "../request-context";

export function metricsRoutes(services: Services) {
  const { registry } = services.metrics;
  return new Elysia({ name: "docxy/metrics" }).get(
    "/metrics",
    async ({ request }) => {
      await admit(services.guards, request, contextOf(request));
      return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
    },
    { detail: { summary: "Prometheus metrics: requests, bytes, cache results and size, upstream latency and quota", tags: ["health"] } },
  );
}

/** `/metrics` for Prometheus (text exposition format). */
import { Elysia } from "elysia";
import type { Services } from "../../services";

export function metricsRoutes(services: Services) {
  const { registry } = services.metrics;
  return new Elysia({ name: "docxy/metrics" }).get(
    "/metrics",
    async () => new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } }),
    { detail: { summary: "Prometheus metrics: requests, bytes, cache results and size, upstream latency and quota", tags: ["health"] } },
  );
}

/**
 * `src/http/` is the only folder that imports Elysia: the apps (this one, the
 * redirect app, the sendfile port's handler), the routes (`routes/`, one file
 * per family), the guards every request passes, and the request context the
 * server edge hands in. Routes translate and hand over: a blob request goes
 * from routes/v2.ts to the pull service services.ts chose (the cache, or the
 * pass-through when the cache is off).
 *
 * The Elysia application: error mapping first (hooks only cover routes
 * registered after them, research/bun-elysia.md pitfall 14), then the routes.
 * It never listens; the server edge feeds it Requests.
 */
import { Elysia } from "elysia";
import type { Services } from "../services";
import { errorResponse } from "./errors";
import { adminRoutes } from "./routes/admin";
import { authRoutes } from "./routes/auth";
import { docsRoutes } from "./routes/docs";
import { fleetRoutes } from "./routes/fleet";
import { healthRoutes } from "./routes/health";
import { metricsRoutes } from "./routes/metrics";
import { statusCacheRoutes } from "./routes/status-cache";
import { statusPageRoutes } from "./routes/status-page";
import { v2Routes } from "./routes/v2";

export function createApp(services: Services) {
  return new Elysia({ name: "docxy" })
    .onError({ as: "global" }, ({ code, error, request }) => errorResponse(code, error, request, services.log))
    .use(docsRoutes())
    .use(healthRoutes(services))
    .use(metricsRoutes(services))
    .use(adminRoutes(services))
    .use(statusPageRoutes(services))
    .use(statusCacheRoutes(services))
    .use(authRoutes(services))
    .use(fleetRoutes(services))
    .use(v2Routes(services));
}

export type App = ReturnType<typeof createApp>;

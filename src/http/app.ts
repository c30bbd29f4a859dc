/**
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
import { healthRoutes } from "./routes/health";
import { metricsRoutes } from "./routes/metrics";
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
    .use(authRoutes(services))
    .use(v2Routes(services));
}

export type App = ReturnType<typeof createApp>;

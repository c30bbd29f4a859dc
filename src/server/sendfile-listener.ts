/**
 * The sendfile port (`[server] sendfile_enabled`; cache/sendfile-redirects.ts).
 * Bun.serve, because only Bun.serve sends a `Bun.file` body with sendfile
 * (research/bun-elysia.md §1.4, option a). It serves file bodies only, so
 * Bun.serve's loss of Content-Length on streamed bodies (oven-sh/bun#10507),
 * the reason the proxy port is node:http, never applies here.
 *
 * Tested in process by tests/server/edge.test.ts, and with real pulls through the binary by
 * tests/integration/server/sendfile-listener.test.ts.
 */
import type { Server } from "bun";
import type { Config } from "../config/schema";
import type { SendfileHandler } from "../http/sendfile-app";
import type { AccessEntry } from "../observability/access-log";
import type { Metrics } from "../observability/metrics";
import { onEveryInterface } from "./every-interface";

export interface SendfileListening {
  /** The port bound (server.sendfile_port, or the one picked for 0). */
  port: number;
  addresses: { host: string; port: number }[];
  close(graceMs: number): Promise<void>;
}

/**
 * Bun's idle timeout (seconds; at most 255) ends a connection that neither
 * sends nor receives this long: a client that stopped reading mid-layer, or an
 * idle keep-alive connection. A sendfile that makes progress resets it.
 */
const IDLE_TIMEOUT_S = 75;

export async function startSendfileListener(
  server: Config["server"],
  handler: SendfileHandler,
  metrics: Metrics,
  logAccess: (entry: AccessEntry) => void,
): Promise<SendfileListening> {
  const servers: Server<undefined>[] = [];
  let port = server.sendfile_port;
  const serve = (hostname: string) =>
    Bun.serve({
      hostname,
      port, // after the first address, the port it bound (when 0 picked one)
      idleTimeout: IDLE_TIMEOUT_S,
      reusePort: false,
      development: false, // never Bun's error page (the handler answers every error itself)
      async fetch(request, bunServer) {
        const begin = performance.now();
        const client = bunServer.requestIP(request)?.address ?? "";
        const response = await handler(request, client);
        // What the kernel is about to send; whether it all arrives, only the socket knows.
        const sent = request.method === "GET" && response.status < 300 ? Number(response.headers.get("content-length") ?? 0) : 0;
        metrics.exchange("sendfile", undefined, response.status, sent, "HIT");
        logAccess({
          client,
          method: request.method,
          path: new URL(request.url).pathname, // never the query: it holds the ticket
          status: response.status,
          bytes: sent,
          ms: Math.round(performance.now() - begin),
          cache: "HIT",
        });
        return response;
      },
    });
  for (const hostname of server.bind.length > 0 ? server.bind : [undefined]) {
    const listener = hostname === undefined ? await onEveryInterface(serve) : serve(hostname);
    port = listener.port ?? port;
    servers.push(listener);
  }
  return {
    port,
    addresses: servers.map((s) => ({ host: s.hostname ?? "", port: s.port ?? port })),
    async close(graceMs) {
      const timer = setTimeout(() => servers.forEach((s) => void s.stop(true)), graceMs);
      await Promise.all(servers.map((s) => s.stop(false)));
      clearTimeout(timer);
    },
  };
}

/**
 * `src/server/` is the only folder that touches listeners, sockets and TLS:
 * this assembly, the node:http bridge into the app, the sendfile port, idle
 * connections, certificates (files, live swaps, ACME in `acme/`).
 *
 * The server edge, assembled from the services: the proxy and redirect apps,
 * the sendfile port's handler, one access log and one file-sending buffer
 * budget for every port. `createEdge` builds; `start` binds the ports the
 * configuration asks for, in order: plain HTTP, HTTPS (after HTTP, since an
 * ACME CA validates through it), then the sendfile port.
 */
import { createApp } from "../http/app";
import { createRedirectApp } from "../http/redirect-app";
import { createSendfileHandler } from "../http/sendfile-app";
import { createAccessLog } from "../observability/access-log";
import type { Services } from "../services";
import { exchangeLog } from "./exchange-log";
import { FileSender } from "./file-sender";
import { startListeners } from "./listeners";
import { startSendfileListener, type SendfileListening } from "./sendfile-listener";

export interface Address {
  scheme: "http" | "https";
  role: "proxy" | "redirect" | "sendfile";
  host: string;
  port: number;
}

export interface Serving {
  /** Every address bound, proxy and redirect ports first. */
  addresses: Address[];
  /** Stops accepting; in-flight responses get `graceMs` to finish. */
  close(graceMs: number): Promise<void>;
}

export interface Edge {
  start(): Promise<Serving>;
}

export function createEdge(services: Services): Edge {
  const { config, certificates, metrics } = services;
  const proxy = createApp(services);
  const redirect = createRedirectApp(services, config.server.https_port);
  const logAccess = createAccessLog(config.log.access);
  const apps = { proxy: (r: Request) => proxy.handle(r), redirect: (r: Request) => redirect.handle(r), challenges: certificates.challenges };
  const parts = {
    apps,
    certificates: () => certificates.store(),
    onDone: exchangeLog({ metrics, recentPulls: services.recentPulls, logAccess }),
    files: new FileSender(),
    metrics,
  };
  const { cache, sendfile: redirects } = services;
  const sendfile = redirects && cache ? { redirects, handler: createSendfileHandler(cache.blobs, redirects, services.guards.network, services.log) } : undefined;

  return {
    async start() {
      const listening = await startListeners(config, parts);
      let files: SendfileListening | undefined;
      if (sendfile) {
        files = await startSendfileListener(config.server, sendfile.handler, metrics, logAccess);
        sendfile.redirects.listening(files.port);
      }
      return {
        addresses: [...listening.addresses, ...(files?.addresses ?? []).map((a) => ({ scheme: "http" as const, role: "sendfile" as const, ...a }))],
        async close(graceMs) {
          await Promise.all([listening.close(graceMs), files?.close(graceMs)]);
        },
      };
    },
  };
}

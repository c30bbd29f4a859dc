/**
 * The listeners Wharf's `[server]` section describes (docxy.md §1.1):
 * - HTTP and HTTPS both on, not behind a proxy ("standalone"): HTTPS serves
 *   the proxy, HTTP only redirects registry paths to it;
 * - otherwise each enabled port serves the full proxy.
 * `server.bind` empty means every interface, IPv4 and IPv6 (one dual-stack
 * socket on `::`, or `0.0.0.0` where the host has no IPv6).
 *
 * Tested in process by tests/server/edge.test.ts; the modes (standalone HTTPS, redirects,
 * behind_proxy) through the binary by tests/integration/server/listeners.test.ts.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Config } from "../config/schema";
import type { Metrics } from "../observability/metrics";
import { onEveryInterface } from "./every-interface";
import { manageIdleConnections, type IdleConnections } from "./idle-connections";
import type { FileSender } from "./file-sender";
import { nodeHandler, type Exchange, type Handler } from "./node-bridge";
import { withAcmeChallenges } from "./acme/challenges";
import type { CertificateStore } from "./tls-store";

export interface Apps {
  proxy: Handler;
  redirect: Handler;
  /** HTTP-01 answers for the ACME client, served on the plain-HTTP port before anything else. */
  challenges?: (token: string) => string | undefined;
}

export interface Listening {
  /** `http://[::]:5000`-style addresses actually bound, for logs and tests. */
  addresses: { scheme: "http" | "https"; role: "proxy" | "redirect"; host: string; port: number }[];
  close(graceMs: number): Promise<void>;
}

/** Long enough for a slow client on a bad link to send its request head; short enough to shed slowloris. */
const HEADERS_TIMEOUT_MS = 30_000;
/** Wharf's keep-alive (75 s) outlives typical client idle pools (Go: 90 s idle, but reuse is opportunistic). */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

/** What the listeners are built from (server/edge.ts assembles it). */
export interface ListenerParts {
  apps: Apps;
  /**
   * Called once the HTTP port listens (an ACME CA validates through it); must
   * give the certificate store when HTTPS is enabled.
   */
  certificates: () => Promise<CertificateStore | undefined>;
  /** Told of every finished exchange. */
  onDone: (exchange: Exchange) => void;
  /** One buffer budget for every listener. */
  files: FileSender;
  metrics: Metrics;
}

export async function startListeners(config: Config, { apps, certificates, onDone, files, metrics }: ListenerParts): Promise<Listening> {
  const { server } = config;
  const standalone = server.http_enabled && server.https_enabled && !server.behind_proxy;
  const servers: http.Server[] = [];
  const idleConnections: IdleConnections[] = [];
  const addresses: Listening["addresses"] = [];

  const start = async (scheme: "http" | "https", role: "proxy" | "redirect", port: number, store?: CertificateStore) => {
    const app = role === "proxy" ? apps.proxy : apps.redirect;
    const handler = nodeHandler(scheme === "http" && apps.challenges ? withAcmeChallenges(apps.challenges, app) : app, onDone, files, server.request_body_timeout * 1000);
    const options = { headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, requestTimeout: 0 };
    for (const host of server.bind.length > 0 ? server.bind : [undefined]) {
      const listener =
        scheme === "https"
          ? https.createServer({ ...options, ...store!.current }, handler)
          : http.createServer(options, handler);
      // Docker and containers/image try TLS first on a plain-HTTP port (protocol.md fact 17):
      // drop such garbage quietly and keep serving.
      listener.on("clientError", (_error, socket: Socket) => socket.destroy());
      listener.on("connection", (socket: Socket) => {
        metrics.connections.inc();
        socket.once("close", () => metrics.connections.dec());
      });
      idleConnections.push(manageIdleConnections(listener, { headMs: HEADERS_TIMEOUT_MS, idleMs: KEEP_ALIVE_TIMEOUT_MS }, scheme === "https"));
      const bound = await bind(listener, port, host);
      if (store) store.attach(listener as https.Server); // a renewed or edited certificate reaches it live
      servers.push(listener);
      addresses.push({ scheme, role, host: bound.address, port: bound.port });
    }
  };

  if (server.http_enabled) await start("http", standalone ? "redirect" : "proxy", server.http_port);
  if (server.https_enabled) {
    const store = await certificates();
    if (!store) throw new Error("HTTPS is enabled but no certificate was loaded");
    await start("https", "proxy", server.https_port, store);
  }

  return {
    addresses,
    async close(graceMs: number) {
      const closing = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const idle of idleConnections) idle.drain();
      const timer = setTimeout(() => servers.forEach((s) => s.closeAllConnections()), graceMs);
      await Promise.all(closing);
      clearTimeout(timer);
    },
  };
}

async function bind(listener: http.Server, port: number, host: string | undefined): Promise<AddressInfo> {
  const attempt = (address: string) =>
    new Promise<AddressInfo>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen({ port, host: address, ipv6Only: false }, () => {
        listener.off("error", reject);
        resolve(listener.address() as AddressInfo);
      });
    });
  return host !== undefined ? attempt(host) : onEveryInterface(attempt);
}

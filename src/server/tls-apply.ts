/**
 * Puts a new certificate on a listening `node:https` server without dropping
 * its connections.
 *
 * In Node this is `server.setSecureContext()`. Bun 1.4.5 has neither of the
 * usual ways (verified by experiment, see tests/server/tls-store.test.ts):
 * - `https.Server` has no `setSecureContext` (only `node:tls` servers do);
 * - `SNICallback` passed to `https.createServer` is never called;
 * - the server is a Bun.serve underneath, and Bun.serve's `reload({ tls })`
 *   keeps the old certificate.
 * What works in Bun is closing the listening socket and listening again on
 * the same server object with Bun's own `listen({ tls })` option:
 * - requests in flight finish on their connection (Bun tracks each listen
 *   as a "generation"; `close(cb)` at shutdown still waits for all of them);
 * - idle keep-alive connections are closed, as at a graceful shutdown, and
 *   clients reconnect; a request sent on one at that very instant sees a
 *   reset, which Go's transport (docker, containerd) retries by itself for
 *   GET and HEAD;
 * - new connections get the new certificate.
 * The price: a new connection that arrives within the ~1 ms between close
 * and listen is refused. Only `cert` and `key` are carried over; docxy sets
 * no other TLS option on its listeners. Bun may emit 'close' for the old
 * socket after the new one listens: check `server.listening` in a 'close'
 * handler. The Bun.serve `reload()` fact is in research/bun-elysia.md §4.
 *
 * Tested with real listeners by tests/server/tls-store.test.ts (a swap reaching a running server).
 */
import type https from "node:https";
import type { AddressInfo } from "node:net";
import type { TlsFiles } from "./tls";

/** Rebinding fails only if another process grabs the port in that millisecond: retry briefly. */
const LISTEN_ATTEMPTS = 20;
const LISTEN_RETRY_MS = 50;

type WithSecureContext = https.Server & { setSecureContext?: (options: TlsFiles) => void };

export async function applyCertificate(server: https.Server, tls: TlsFiles): Promise<void> {
  const node = server as WithSecureContext;
  if (typeof node.setSecureContext === "function") {
    node.setSecureContext({ cert: tls.cert, key: tls.key });
    return;
  }
  const address = server.address();
  // Not listening (not yet, or closed for good): nothing to swap.
  if (!server.listening || address === null || typeof address === "string") return;
  const { address: host, port } = address as AddressInfo;
  server.close(); // stops accepting; connections stay (see above)
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= LISTEN_ATTEMPTS; attempt++) {
    try {
      await listen(server, { port, host, tls: { cert: tls.cert, key: tls.key } });
      return;
    } catch (error) {
      lastError = error as Error;
      await Bun.sleep(LISTEN_RETRY_MS);
    }
  }
  throw new Error(`https listener on ${host}:${port} could not listen again after a certificate change: ${lastError?.message}`);
}

function listen(server: https.Server, options: { port: number; host: string; tls: TlsFiles }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off("listening", onListening);
      reject(error);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    // `tls` is Bun's extension of listen(); Node ignores it (and never gets here).
    server.listen(options as Parameters<https.Server["listen"]>[0]);
  });
}

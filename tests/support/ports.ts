// Free loopback ports for child processes (docker-registry) that cannot take port 0 themselves.
import { createServer } from "node:net";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: bind port 0, read the port the kernel
 * chose, close. Another process could grab it in between, so callers that spawn a server on it
 * should retry on "address already in use" (registry.ts does).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close((err) => (err || !port ? reject(err ?? new Error("no port")) : resolve(port)));
    });
  });
}

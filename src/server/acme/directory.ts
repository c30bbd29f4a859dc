/**
 * A quick look at the CA's directory before each order.
 *
 * Why: when the CA cannot be reached, acme-client 5.4.0 retries each request
 * for 75 s and then fails with "undefined is not an object (evaluating
 * 'response.config')" (its retry interceptor reads the response of a
 * request that never got one). One GET through the same agent fails in
 * seconds and says why: refused, unknown host, untrusted certificate.
 *
 * Tested against a real ACME CA (Pebble), reachable and not: tests/server/acme/pebble.test.ts.
 */
import http from "node:http";
import https from "node:https";

const TIMEOUT_MS = 10_000;

export function probeDirectory(url: string, agent: https.Agent | undefined): Promise<void> {
  const fail = (why: string) => new Error(`ACME directory ${url} unreachable: ${why}`);
  return new Promise((resolve, reject) => {
    const client = url.startsWith("http:") ? http : https;
    const request = client.get(url, { agent: url.startsWith("http:") ? undefined : agent, timeout: TIMEOUT_MS }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => {
        if (response.statusCode !== 200) return reject(fail(`HTTP ${response.statusCode}`));
        try {
          const directory = JSON.parse(body) as { newOrder?: unknown };
          if (typeof directory.newOrder === "string") return resolve();
        } catch {
          // reported below
        }
        reject(fail("the answer is not an ACME directory"));
      });
      response.on("error", (error) => reject(fail(error.message)));
    });
    request.on("timeout", () => request.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    request.on("error", (error: NodeJS.ErrnoException) => reject(fail(error.code ? `${error.code} ${error.message}` : error.message)));
  });
}

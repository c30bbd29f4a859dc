/**
 * `docxy health [--url URL]`: GETs a running docxy's `/health` and exits 0 when it answers 200,
 * 1 otherwise. It is the container image's HEALTHCHECK: a from-scratch image has no shell or curl,
 * so the binary checks itself. Without `--url` it asks the plain-HTTP port the configuration gives
 * (the same file and DOCXY_* variables the server reads), so a check run inside the container
 * follows `DOCXY_SERVER_HTTP_PORT` or a mounted config without being told.
 *
 * Tested in process: tests/cli/health.test.ts; through the binary: tests/integration/cli/commands.test.ts.
 */
import { ConfigError, loadConfig } from "../config/load";
import type { Config } from "../config/schema";
import { UsageError } from "./args";

/** Above the 5 s default ping budget: `/health` waits for its upstream probes when they are stale. */
const TIMEOUT_MS = 15_000;

export async function healthCommand(args: string[], env: Record<string, string | undefined>): Promise<number> {
  let url: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--url" && args[i + 1]) url = args[++i];
    else throw new UsageError(arg === "--url" ? "--url needs a value" : `unknown option ${arg}`);
  }
  if (url === undefined) {
    try {
      url = healthUrl((await loadConfig({ env })).config);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) process.stderr.write(`docxy health: invalid configuration: ${problem}\n`);
      return 1;
    }
  }
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = await response.text();
    if (response.status !== 200) {
      process.stderr.write(`docxy health: ${url} answered ${response.status}\n`);
      return 1;
    }
    // "ok" or "degraded" (an upstream or the store in trouble): docxy itself serves either way.
    const status = (JSON.parse(body) as { status?: string }).status ?? "unknown";
    process.stdout.write(`${url}: ${status}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`docxy health: ${url}: ${(error as Error).message}\n`);
    return 1;
  }
}

/** Loopback on the configured HTTP port, unless `server.bind` lists only other addresses: then the first of them. */
export function healthUrl({ server }: Config): string {
  if (!server.http_enabled) throw new UsageError("the configuration has no plain-HTTP listener: give --url");
  const loopback = server.bind.length === 0 || server.bind.some((a) => ["0.0.0.0", "::", "127.0.0.1"].includes(a));
  const host = loopback ? "127.0.0.1" : server.bind[0]!;
  return `http://${host.includes(":") ? `[${host}]` : host}:${server.http_port}/health`;
}

// docxy's services built in this process, exactly as the binary builds them (config file →
// loadConfig → createServices), for tests that drive the app or a route with app.handle().
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load";
import { createLogger } from "../../src/observability/logger";
import { createServices, type Services } from "../../src/services";
import { removeAtExit } from "./cleanup";

export interface InProcess {
  services: Services;
  /** Every log line the services wrote. */
  log: string[];
  /** A temporary directory of its own; the cache lives in `cache/` under it. */
  dir: string;
}

/** `toml` is a docxy configuration file's text; the cache goes to a fresh temporary directory. */
export async function inProcessServices(toml: string, env: Record<string, string | undefined> = {}): Promise<InProcess> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-in-process-"));
  removeAtExit(dir);
  const path = join(dir, "docxy.toml");
  writeFileSync(path, toml);
  const { config } = await loadConfig({ path, env, overrides: { "cache.dir": join(dir, "cache") } });
  const log: string[] = [];
  const services = await createServices(config, createLogger("debug", (line) => log.push(line)), { env });
  return { services, log, dir };
}

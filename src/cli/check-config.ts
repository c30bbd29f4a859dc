/**
 * `docxy check-config [FILE]`: validates a configuration without starting
 * anything (for CI and before a reload). Exit 0 and a summary when valid;
 * exit 2 and one line per problem otherwise. A fleet's Redis and bucket,
 * when configured, are probed as a start would (fleet/reachability.ts) and
 * reported: an unreachable part fails the check (exit 1) only under
 * `[fleet] on_unreachable = "exit"`, where a node would not start; under
 * "degrade" it would start, so the check passes and says so.
 *
 * Tested through the binary: tests/integration/cli/commands.test.ts.
 */
import { parseImageList } from "../cache/image-list";
import { ConfigError, loadConfig } from "../config/load";
import type { Config } from "../config/schema";
import { formatSize } from "../config/units";
import { reachParts } from "../fleet/reachability";
import { envProxies } from "../upstream/env-proxy";
import { upstreamTableFromConfig } from "../upstream/table";

export async function checkConfig(args: string[], env: Record<string, string | undefined>): Promise<number> {
  const path = args.find((a) => !a.startsWith("-"));
  try {
    const { config, source, warnings } = await loadConfig({ path, env });
    for (const warning of warnings) process.stderr.write(`docxy: warning: ${warning}\n`);
    const table = upstreamTableFromConfig(config);
    process.stdout.write(
      `${source}: valid\n` +
        `  listeners: ${[config.server.http_enabled && `http :${config.server.http_port}`, config.server.https_enabled && `https :${config.server.https_port}`].filter(Boolean).join(", ")}\n` +
        `  upstreams: ${table.all.map((u) => `${u.name} (${u.registry}${u.proxy ? ` via ${u.proxy.display}` : ""})`).join(", ")}; default ${table.default.name}\n` +
        table.all
          .filter((u) => u.fallbacks?.length)
          .map((u) => `  fallbacks of ${u.name}: ${u.fallbacks!.map((f) => f.url).join(", ")}\n`)
          .join("") +
        envProxies(env).map(({ name, proxy }) => `  ${name}: ${proxy?.display}\n`).join("") +
        `  cache: ${config.cache.enabled ? `${config.cache.dir}, max ${formatSize(config.cache.max_size)}` : "off"}\n` +
        (config.cache.enabled ? `  storage: ${storage(config, env)}\n` : "") +
        (config.cache.pin.length > 0 ? `  pinned: ${config.cache.pin.join("; ")}\n` : "") +
        (config.prewarm.file ? `  prewarm: ${await prewarmList(config.prewarm.file)}, ${config.prewarm.interval ? `every ${config.prewarm.interval / 1000}s` : "at start"}\n` : "") +
        `  proxy users: ${config.auth.enabled ? "on" : "off"}\n`,
    );
    const unreachable = [];
    for (const part of await reachParts(config, env)) {
      process.stdout.write(`  ${part.part} ${part.where}: ${part.error === undefined ? "reachable" : `unreachable (${part.error})`}\n`);
      if (part.error !== undefined) unreachable.push(part.part);
    }
    if (unreachable.length === 0) return 0;
    const exit = config.fleet.on_unreachable === "exit";
    process.stderr.write(`docxy: ${unreachable.join(" and ")} unreachable: a node would ${exit ? "exit at start (fleet.on_unreachable = \"exit\")" : "start degraded"}\n`);
    return exit ? 1 : 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`docxy: invalid configuration: ${problem}\n`);
    return 2;
  }
}

/**
 * The pre-warm list as a run would read it now. Its bad lines are warnings, not errors: a run skips
 * them and pulls the rest, and the file may be fixed before the next run.
 */
async function prewarmList(file: string): Promise<string> {
  let text: string;
  try {
    text = await Bun.file(file).text();
  } catch (error) {
    return `${file} (unreadable: ${(error as Error).message}; each run reports it)`;
  }
  const { images, problems } = parseImageList(text);
  for (const problem of problems) process.stderr.write(`docxy: warning: prewarm.file ${file} line ${problem.line} is skipped: ${problem.error}\n`);
  return `${file} (${images.length} images${problems.length ? `, ${problems.length} bad lines` : ""})`;
}

/** Where blobs live; for a bucket its endpoint, name and where the access key comes from, never the secret. */
function storage({ cache }: Config, env: Record<string, string | undefined>): string {
  if (cache.storage !== "s3") return `filesystem (${cache.dir})`;
  const { endpoint, bucket, prefix, region } = cache.s3;
  const key = cache.s3.access_key_id ? "access key from the configuration" : env.AWS_ACCESS_KEY_ID ? "access key from AWS_ACCESS_KEY_ID" : "no access key";
  return `s3 bucket ${bucket}${prefix ? ` (prefix ${prefix})` : ""} at ${new URL(endpoint).origin}, region ${region}, ${key}; spool in ${cache.dir}`;
}

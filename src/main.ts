/**
 * Entry point of the `docxy` binary: flags → config → certificates → services
 * (the composition root, services.ts) → the edge built from them
 * (server/edge.ts), started here. The only place that exits the process. Exports nothing: a compiled entry
 * that exports an `app` crashes at start (research/bun-elysia.md pitfall 10).
 *
 * Tested through the binary: tests/integration/main.test.ts.
 */
import { HELP, parseArgs, UsageError } from "./cli/args";
import { checkConfig } from "./cli/check-config";
import { healthCommand } from "./cli/health";
import { prewarmCommand } from "./cli/prewarm";
import { ConfigError, loadConfig } from "./config/load";
import { startPolicy } from "./fleet/reachability";
import { createLogger } from "./observability/logger";
import { prepareCertificates } from "./server/certificates";
import { createEdge } from "./server/edge";
import { planHeap } from "./server/heap-budget";
import { createServices } from "./services";
import { VERSION } from "./version";

/** Exit codes: 2 for usage and configuration mistakes (nothing started), 1 for runtime failures. */
async function main(): Promise<number | undefined> {
  const argv = process.argv.slice(2);
  try {
    if (argv[0] === "check-config") return await checkConfig(argv.slice(1), process.env);
    if (argv[0] === "prewarm") return await prewarmCommand(argv.slice(1), process.env);
    if (argv[0] === "health") return await healthCommand(argv.slice(1), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`docxy: ${error.message}\n\n${HELP}`);
    return 2;
  }
  let args;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`docxy: ${error.message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) return void process.stdout.write(HELP), 0;
  if (args.version) return void process.stdout.write(`docxy ${VERSION}\n`), 0;
  planHeap();

  let loaded;
  try {
    loaded = await loadConfig({ path: args.configPath, env: process.env, overrides: args.overrides });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`docxy: invalid configuration: ${problem}\n`);
    return 2;
  }
  const { config } = loaded;
  const log = createLogger(config.log.level);
  let certificates;
  try {
    certificates = prepareCertificates(config, log);
  } catch (error) {
    process.stderr.write(`docxy: invalid configuration: ${(error as Error).message}\n`);
    return 2;
  }
  for (const warning of loaded.warnings) log.warn(warning, { config: loaded.source });

  // Last resort only: every stream and promise is handled where it arises (the hang-up tests
  // assert this line never appears). One request's bug must not end every pull in flight.
  // The message only: a stack or an error object could carry request headers.
  const keepServing = (kind: string) => (error: unknown) =>
    log.error(`${kind}; docxy keeps serving`, { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  process.on("unhandledRejection", keepServing("unhandled rejection"));
  process.on("uncaughtException", keepServing("uncaught exception"));

  // [fleet] on_unreachable: Redis and the bucket are probed before anything listens, while the
  // services are built (opening the cache waits on the bucket too: a hung one costs one wait, not two).
  const mayStart = startPolicy(config, process.env, log);
  const services = await createServices(config, log, { certificates });
  if (!(await mayStart)) {
    certificates.close();
    return 1;
  }
  const edge = createEdge(services);
  let serving;
  try {
    serving = await edge.start();
  } catch (error) {
    process.stderr.write(`docxy: cannot start: ${(error as Error).message}\n`);
    return 1;
  }

  const url = (scheme: string, host: string, port: number) => `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  for (const a of serving.addresses) log.info("listening", { url: url(a.scheme, a.host, a.port), role: a.role });
  if (config.server.sendfile_enabled && !services.sendfile) log.warn("server.sendfile_enabled: the cache is not usable, so there is no sendfile port");
  for (const u of services.upstreams.all) {
    log.info("upstream", {
      name: u.name,
      url: u.url,
      default: u === services.upstreams.default,
      public_base_url: u.publicBaseUrl ?? "(from self-addressed Host)",
      ...(u.proxy ? { proxy: u.proxy.display } : {}), // never the URL: it holds the proxy's password
    });
  }
  if (!services.upstreams.all.some((u) => u.publicBaseUrl)) {
    log.warn("server.public_base_url is not set: token realms use the Host header only when it names this machine; set it when clients reach docxy by another name");
  }
  const stop = async (signal: string) => {
    log.info("stopping", { signal });
    certificates.close();
    // In-flight downloads get up to 10 s to finish.
    await serving.close(10_000);
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
  // SIGHUP and POST /admin/reload: re-read the certificate (policy and user files reload by
  // themselves when they change).
  process.on("SIGHUP", () => log.info("reload", services.reload()));
  // Last: "started" means the signal handlers are in place too.
  log.info("docxy started", { version: VERSION, config: loaded.source });

  return undefined;
}

// No top-level await: `--bytecode` compiles to CommonJS.
main().then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`docxy: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);

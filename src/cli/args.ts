/**
 * `src/cli/`: the binary's command line — flags, and the `check-config`,
 * `prewarm` and `health` subcommands. main.ts runs them.
 *
 * Command-line flags. Wharf's (`-c/--config`, `--log-level`, `-h`, `-V`) keep
 * their meaning; the common settings have flags of their own, which override
 * the file and the environment.
 */
export interface Args {
  help: boolean;
  version: boolean;
  configPath?: string;
  /** `section.key` → raw value, validated with the rest of the config. */
  overrides: Record<string, string>;
}

export class UsageError extends Error {}

const SETTINGS: Record<string, string> = {
  "--log-level": "log.level",
  "--http-port": "server.http_port",
  "--https-port": "server.https_port",
  "--bind": "server.bind",
  "--public-base-url": "server.public_base_url",
  "--upstream": "registry.upstream_registry",
};

export const HELP = `docxy — a container registry pull proxy

Usage: docxy [options]                 run the proxy
       docxy check-config [FILE]       validate a configuration and exit
       docxy prewarm IMAGE [--platform linux/amd64,...] [--url URL] [--token TOKEN]
                                       pull an image into a running docxy's cache
                                       (admin API; token also DOCXY_ADMIN_TOKEN)
       docxy prewarm --file FILE [--url URL] [--token TOKEN]
                                       the same for each line of FILE ("IMAGE [os/arch,...]"),
                                       one run of the running docxy's pre-warm list
       docxy health [--url URL]        exit 0 if a running docxy's /health answers 200, else 1
                                       (default URL: 127.0.0.1 on the configured http_port)

Options:
  -c, --config FILE        TOML config file (also DOCXY_CONFIG or WHARF_CONFIG;
                           default ./config/default.toml if present, else built-in defaults)
      --log-level LEVEL    debug | info | warn | error (default info)
      --http-port PORT     plain HTTP port (default 5000)
      --https-port PORT    HTTPS port (default 443; needs [tls] and https_enabled)
      --bind ADDRS         comma-separated listen addresses (default: all, IPv4 and IPv6)
      --public-base-url U  external origin used in token realms and redirects
      --upstream URL       upstream registry (default https://registry-1.docker.io)
  -h, --help               show this help
  -V, --version            show the version

Every config key can also be set as DOCXY_<SECTION>_<KEY>, e.g. DOCXY_SERVER_HTTP_PORT=8080.
Precedence: flags > environment > config file > built-in defaults.
`;

export function parseArgs(argv: string[]): Args {
  const args: Args = { help: false, version: false, overrides: {} };
  // As in Wharf, -h anywhere wins over everything else, mistakes included.
  if (argv.some((a) => a === "-h" || a === "--help")) return { ...args, help: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const split = arg.startsWith("-") && arg.includes("=");
    const [flag, inline] = split ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "" || (inline === undefined && v.startsWith("-"))) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === "-V" || flag === "--version") args.version = true;
    else if (flag === "-c" || flag === "--config") args.configPath = value();
    else if (SETTINGS[flag]) args.overrides[SETTINGS[flag]] = value();
    else throw new UsageError(`unknown option ${arg}`);
  }
  return args;
}

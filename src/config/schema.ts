/**
 * The configuration file's shape, its defaults and what each key means.
 *
 * Keys and meanings are Wharf 0.6.2's (research/docxy.md §3.2) so an existing
 * `config/default.toml` works unchanged; docxy's additions are marked "docxy".
 * The same schema validates the TOML file, `DOCXY_*` environment variables and
 * command-line flags, so a mistake is reported under the key the user wrote.
 */
import { Type as t, type Static, type StaticDecode } from "@sinclair/typebox";
import { parseDuration, parseSize } from "./units";

const port = (fallback: number) =>
  t.Integer({ minimum: 0, maximum: 65535, default: fallback, description: "0 picks any free port (tests)" });
const seconds = (fallback: number, description: string) => t.Number({ minimum: 0, default: fallback, description });

/**
 * A key written as text with a unit ("20GiB", "5m") or a bare number, and
 * loaded as a number (bytes, milliseconds; units.ts). load.ts runs the decode
 * for every such key and reports each one that does not parse.
 */
const quantity = (parse: (value: string | number) => number) => (options: { default?: string | number; description?: string } = {}) =>
  t.Transform(t.Union([t.String(), t.Number()], options))
    .Decode(parse)
    .Encode((value: number): string | number => value);
const size = quantity(parseSize);
const duration = quantity(parseDuration);

/**
 * One `[[registry.upstreams]]` entry. With the `name` of a built-in upstream
 * (upstream/builtins.ts) it overrides just the keys it sets; with a new name it
 * adds an upstream, and then `upstream_registry` is required. No defaults are
 * filled in here, so that an override can tell "not set" from "set".
 */
/**
 * One upstream account. The secret comes from exactly one of `password`,
 * `password_file` (first line) or `password_env`; an access token works as
 * the password for Docker Hub. Secrets are never logged or reported.
 */
export const CredentialSchema = t.Object({
  username: t.String({ minLength: 1 }),
  password: t.Optional(t.String()),
  password_file: t.Optional(t.String()),
  password_env: t.Optional(t.String()),
});

/**
 * One fallback of an upstream (upstream/fallbacks.ts): its URL, or a table with
 * the URL and the accounts docxy uses there (else it pulls anonymously).
 */
export const FallbackSchema = t.Union([
  t.String({ description: "Base URL of an origin serving the same content, e.g. https://mirror.gcr.io" }),
  t.Object({
    url: t.String({ description: "Base URL of the fallback" }),
    credentials: t.Optional(t.Array(CredentialSchema, { description: "Accounts docxy uses at this fallback (default: anonymous)" })),
  }),
]);

const fallbacksDescription =
  "docxy: origins serving the same content, asked in order when this upstream is unreachable, times out or answers 429 or 5xx (never for its 401, 403 or 404); docxy pulls from them as itself";

export const UpstreamSchema = t.Object({
  name: t.String({ pattern: "^[A-Za-z0-9._-]+$", description: "Used in /auth/<name>/token" }),
  registry: t.Optional(t.String({ description: "docxy: canonical registry host (path prefix and ?ns= value), e.g. ghcr.io; default: the URL's host" })),
  hosts: t.Optional(t.Array(t.String(), { description: "Host names that select this upstream" })),
  upstream_registry: t.Optional(t.String({ description: "Base URL of the upstream registry" })),
  auth_realm: t.Optional(t.String({ description: "Upstream token realm; discovered from its /v2/ challenge when omitted" })),
  auth_service: t.Optional(t.String({ description: "Upstream token service; discovered when omitted" })),
  auto_library_prefix: t.Optional(t.Boolean({ description: "Prefix single-segment names with library/ (default false)" })),
  public_base_url: t.Optional(t.String({ description: "External origin of this proxy for this upstream" })),
  enabled: t.Optional(t.Boolean({ description: "docxy: false removes a built-in upstream (default true)" })),
  allow_private_redirects: t.Optional(
    t.Boolean({
      description:
        "docxy: let this upstream's redirects and token realm lead to loopback, private, link-local and cloud metadata addresses (default false: only to public ones, or to the kind of address the upstream itself is on)",
    }),
  ),
  credentials: t.Optional(
    t.Array(CredentialSchema, { description: "docxy: accounts docxy uses for clients that bring no credentials of their own" }),
  ),
  fallbacks: t.Optional(t.Array(FallbackSchema, { description: fallbacksDescription })),
  proxy: t.Optional(
    t.String({
      description:
        "docxy: outbound proxy for every request to this upstream (registry, token realm, redirects), instead of HTTPS_PROXY/HTTP_PROXY: http://, https://, socks5:// or socks5h://, with user:password@ when it needs them",
    }),
  ),
});

export const ConfigSchema = t.Object({
  server: t.Object(
    {
      http_port: port(5000),
      https_port: port(443),
      http_enabled: t.Boolean({ default: true }),
      https_enabled: t.Boolean({ default: false }),
      behind_proxy: t.Boolean({ default: false, description: "HTTP port serves the full proxy even when HTTPS is on" }),
      public_base_url: t.Optional(t.String({ description: "External origin used in token realms and redirects" })),
      bind: t.Array(t.String(), { default: [], description: "docxy: listen addresses; empty = every IPv4 and IPv6 interface" }),
      sendfile_enabled: t.Boolean({
        default: false,
        description: "docxy: serve cache hits with sendfile from sendfile_port; GETs of cached blobs on plain HTTP answer 307 to it",
      }),
      sendfile_port: port(5001),
      sendfile_url: t.Optional(t.String({ description: "docxy: where clients reach sendfile_port (default: the host they used, on sendfile_port)" })),
      request_body_timeout: t.Number({
        exclusiveMinimum: 0,
        default: 30,
        description: "docxy: seconds a request body (token form, admin JSON) may take to arrive in full; then 408 and the connection closes",
      }),
    },
    { default: {} },
  ),
  registry: t.Object(
    {
      default: t.String({ default: "dockerhub" }),
      upstream_registry: t.String({ default: "https://registry-1.docker.io" }),
      // No defaults: unset means "Docker Hub's when upstream_registry is Docker Hub's, else
      // discovered from the upstream's challenge" (upstream/table.ts). A filled-in Docker Hub
      // realm would send a chained docxy's token requests to auth.docker.io (issue 14).
      auth_realm: t.Optional(t.String({ description: "Upstream token realm; Docker Hub's for Docker Hub, else discovered from the upstream's /v2/ challenge" })),
      auth_service: t.Optional(t.String({ description: "Upstream token service; Docker Hub's for Docker Hub, else discovered" })),
      auto_library_prefix: t.Boolean({ default: true }),
      fallbacks: t.Array(FallbackSchema, { default: [], description: `${fallbacksDescription} (the single-upstream form; ignored with [[registry.upstreams]])` }),
      public_base_url: t.Optional(t.String()),
      builtin_upstreams: t.Boolean({ default: true, description: "docxy: start from the built-in table of well-known registries" }),
      upstreams: t.Array(UpstreamSchema, { default: [] }),
    },
    { default: {} },
  ),
  tls: t.Optional(
    t.Object({
      cert_path: t.String({ default: "", description: "PEM certificate chain (reloaded when the file changes or on SIGHUP)" }),
      key_path: t.String({ default: "", description: "PEM private key (RSA or EC)" }),
      acme_domains: t.Array(t.String(), {
        default: [],
        description: "docxy: names (or IPs) to get a certificate for over ACME (HTTP-01 on the HTTP port); cert_path/key_path are then unused",
      }),
      acme_email: t.String({ default: "", description: "docxy: contact address for the CA" }),
      acme_directory: t.String({ default: "https://acme-v02.api.letsencrypt.org/directory", description: "docxy: the CA's ACME directory" }),
      acme_dir: t.String({ default: "docxy-acme", description: "docxy: account key and certificates (relative to the working directory)" }),
      acme_ca_root: t.String({ default: "", description: "docxy: PEM file trusted for the directory's HTTPS (private or test CAs)" }),
    }),
  ),
  upstream: t.Object(
    {
      header_timeout: seconds(30, "docxy: seconds to wait for upstream response headers"),
      idle_timeout: seconds(120, "docxy: seconds without a byte before an upstream body is abandoned"),
      ping_timeout: seconds(5, "docxy: budget of /v2/ and /health upstream checks"),
      max_redirects: t.Integer({ minimum: 0, maximum: 20, default: 5 }),
    },
    { default: {} },
  ),
  cache: t.Object(
    {
      enabled: t.Boolean({ default: true, description: "docxy: false makes docxy a pure forwarder" }),
      dir: t.String({ default: "docxy-cache", description: "docxy: cache directory (relative to the working directory)" }),
      max_size: size({ default: "20GiB", description: 'docxy: e.g. "50GiB"; least recently used content goes first' }),
      max_age: duration({ default: "30d", description: "docxy: content unused this long is removed" }),
      tag_ttl: duration({ default: "60s", description: "docxy: how long a tag's digest is trusted before a HEAD revalidates it" }),
      tag_ttl_overrides: t.Record(t.String(), duration(), {
        default: {},
        description: 'docxy: glob on the tag (or "repository:tag") → TTL, e.g. { "latest" = "10s" }',
      }),
      continue_on_disconnect: t.Boolean({ default: true, description: "docxy: finish filling a blob when its clients leave" }),
      keep_deleted: t.Boolean({
        default: false,
        description:
          "docxy: when the upstream answers 404 for a tag (or a repository) docxy has cached, serve its last known manifest with a Warning header instead of the 404",
      }),
      pin: t.Array(t.String(), {
        default: [],
        description:
          'docxy: images never evicted, fetched when missing and refreshed on their tag TTL: "IMAGE [os/arch,…]", e.g. "alpine:3.20 linux/amd64", "ghcr.io/acme/app:1.*" (tags listed upstream), "ghcr.io/acme/*" (cached content only)',
      }),
      // Docker fetches 3 layers of an image at once and containerd a few more, and several CI
      // machines may share one NAT address: 16 per address and 64 in all are never reached by a
      // team, yet bound what abandoned requests for distinct blobs can start.
      max_fills: t.Integer({ minimum: 1, default: 64, description: "docxy: blob downloads into the cache at once; beyond it, 503 with Retry-After" }),
      max_fills_per_client: t.Integer({
        minimum: 1,
        default: 16,
        description: "docxy: blob downloads one client address (IPv6 per /64) may have started and running; beyond it, 429 with Retry-After",
      }),
      max_fill_bytes: size({
        default: 0,
        description: 'docxy: sum of the sizes of blob downloads in progress, e.g. "10GiB"; 0 = max_size (temp files live on the cache\'s disk); beyond it, 503',
      }),
      storage: t.Union([t.Literal("filesystem"), t.Literal("s3")], {
        default: "filesystem",
        description: 'docxy: where blobs live: "filesystem" (under dir) or "s3" (the bucket of [cache.s3]; dir then holds the spool of fills in progress)',
      }),
      s3: t.Object(
        {
          endpoint: t.String({ default: "", description: "docxy: the S3-compatible store's URL, e.g. http://127.0.0.1:9000 (path-style requests)" }),
          bucket: t.String({ default: "", description: "docxy: an existing bucket; docxy does not create it" }),
          // Bun's own default is "auto", which only R2 takes (Swift answers AuthorizationHeaderMalformed, fleet.md §2).
          region: t.String({ default: "us-east-1", description: "docxy: the region requests are signed for" }),
          access_key_id: t.String({ default: "", description: "docxy: empty = AWS_ACCESS_KEY_ID from the environment" }),
          secret_access_key: t.String({ default: "", description: "docxy: empty = AWS_SECRET_ACCESS_KEY from the environment; never logged" }),
          prefix: t.String({ default: "", description: 'docxy: key prefix inside the bucket, e.g. "docxy/"' }),
          hot_tier_size: size({
            default: 0,
            description:
              'docxy: a local copy of the most read blobs under dir/hot, served as local files with no bucket request, e.g. "50GiB"; 0 = off (every hit reads the bucket)',
          }),
          presigned_redirect: t.Boolean({
            default: false,
            description:
              "docxy: a GET of a cached blob that is not on this node's disk answers 307 to a presigned URL of its object, after the same access checks: clients read the bucket, not the node (clients must reach the endpoint)",
          }),
          presigned_ttl: duration({
            default: "5m",
            description: "docxy: how long a presigned URL stays valid (1s to 7d); whoever holds the URL may read the blob until then",
          }),
        },
        { default: {} },
      ),
    },
    { default: {} },
  ),
  // A fleet: nodes share one bucket (cache.storage = "s3") and coordinate in one Redis (issue 16).
  fleet: t.Object(
    {
      redis_url: t.String({ default: "", description: "docxy: redis:// or rediss:// URL of the Redis the fleet shares; empty = a single node" }),
      advertise_url: t.String({
        default: "",
        description: "docxy: origin the other nodes reach this one at, for the bytes of fills in progress, e.g. http://10.0.0.5:5000; required with redis_url",
      }),
      secret: t.String({ default: "", description: "docxy: shared key (≥ 32 chars) authenticating node-to-node requests; this or secret_file is required with redis_url" }),
      secret_file: t.String({ default: "", description: "docxy: file whose first line is the shared secret" }),
      on_unreachable: t.Union([t.Literal("degrade"), t.Literal("exit")], {
        default: "degrade",
        description:
          'docxy: when Redis (redis_url) or the bucket (cache.storage = "s3") does not answer at start: "degrade" = say so and start (coordinating alone, pulls from the upstream until the bucket answers); "exit" = say so and exit 1 before listening',
      }),
    },
    { default: {} },
  ),
  prewarm: t.Object(
    {
      file: t.String({ default: "", description: 'docxy: list of images to pre-warm, one "IMAGE [os/arch,…]" a line, # comments; read again for each run' }),
      interval: duration({ default: 0, description: 'docxy: time between runs of the list, e.g. "6h"; 0 = only at start (and POST /admin/prewarm/run)' }),
    },
    { default: {} },
  ),
  auth: t.Object(
    {
      enabled: t.Boolean({ default: false, description: "docxy: require docxy's own users (docker login <docxy>)" }),
      htpasswd: t.String({ default: "", description: "docxy: htpasswd file with bcrypt entries (htpasswd -B), reloaded on change" }),
      tokens: t.Array(t.String(), { default: [], description: 'docxy: static "name:token" bearer tokens, e.g. for CI' }),
      token_ttl: duration({ default: "5m", description: "docxy: lifetime of the tokens docxy issues" }),
      secret: t.String({ default: "", description: "docxy: key that signs docxy's tokens (≥ 32 chars); random per start when empty" }),
      failed_logins_per_address: t.Integer({
        minimum: 0,
        default: 10,
        description: "docxy: wrong passwords per client address (IPv6 per /64) and minute before logins from it get 429; 0 = unlimited",
      }),
      failed_logins_per_user: t.Integer({
        minimum: 0,
        default: 10,
        description: "docxy: wrong passwords per user name and minute before logins as that user get 429; 0 = unlimited",
      }),
    },
    { default: {} },
  ),
  access: t.Object(
    {
      allow: t.Array(t.String(), { default: [], description: "docxy: client CIDRs allowed (empty: all)" }),
      deny: t.Array(t.String(), { default: [], description: "docxy: client CIDRs refused (wins over allow)" }),
      trusted_proxies: t.Array(t.String(), { default: [], description: "docxy: CIDRs whose X-Forwarded-For is believed" }),
    },
    { default: {} },
  ),
  policy: t.Object(
    {
      allow: t.Array(t.String(), { default: [], description: 'docxy: images allowed, e.g. "docker.io/library/*", "ghcr.io/myorg/**" (empty: all)' }),
      deny: t.Array(t.String(), { default: [], description: "docxy: images refused (wins over allow)" }),
      allow_tags: t.Array(t.String(), { default: [], description: "docxy: tag globs allowed for pulls by tag (empty: all)" }),
      file: t.String({ default: "", description: "docxy: TOML file with allow/deny/allow_tags, reloaded on change (replaces the keys above)" }),
    },
    { default: {} },
  ),
  limits: t.Object(
    {
      requests_per_minute: t.Integer({ minimum: 0, default: 0, description: "docxy: per client address (IPv6 per /64); 0 = unlimited" }),
      user_requests_per_minute: t.Integer({ minimum: 0, default: 0, description: "docxy: per proxy user; 0 = unlimited" }),
      bytes_per_second: size({ default: 0, description: 'docxy: blob download rate per user or address, e.g. "20MB"; 0 = unlimited' }),
    },
    { default: {} },
  ),
  admin: t.Object(
    {
      token: t.String({ default: "", description: "docxy: bearer token for /admin (also DOCXY_ADMIN_TOKEN); empty disables the admin API" }),
    },
    { default: {} },
  ),
  log: t.Object(
    {
      level: t.Union([t.Literal("debug"), t.Literal("info"), t.Literal("warn"), t.Literal("error")], { default: "info" }),
      access: t.Union([t.Literal("json"), t.Literal("text"), t.Literal("off")], {
        default: "json",
        description: "docxy: the per-request access log: JSON lines, logfmt text, or none",
      }),
    },
    { default: {} },
  ),
});

/** The configuration as loaded: sizes in bytes, durations in milliseconds. */
export type Config = StaticDecode<typeof ConfigSchema>;
export type UpstreamEntry = Static<typeof UpstreamSchema>;
export type CredentialEntry = Static<typeof CredentialSchema>;
export type FallbackEntry = Static<typeof FallbackSchema>;

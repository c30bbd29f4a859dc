/**
 * Composition root: turns a validated Config into the live objects the HTTP
 * layer uses. No module keeps state in globals; everything lives here. The
 * server edge (server/edge.ts) builds its listeners from these, and main.ts
 * starts them.
 */
import { LoginThrottle } from "./auth/login-throttle";
import { CredentialMemory } from "./auth/credential-memory";
import { ProxyLogin, type ProxyAuth } from "./auth/proxy-login";
import { ProxyTokens } from "./auth/proxy-tokens";
import { PublicOrigin } from "./auth/public-origin";
import { ProxyUsers } from "./auth/users";
import type { Guards } from "./http/guard";
import { BandwidthLimiter } from "./policy/bandwidth";
import { ImagePolicyFile } from "./policy/image-policy-file";
import { ImagePolicy } from "./policy/image-rules";
import { NetworkPolicy } from "./policy/network";
import { MemoryRateLimitStore, RequestLimiter, type RateLimitStore } from "./policy/rate-limiter";
import { TokenProxy } from "./auth/token-proxy";
import type { Config } from "./config/schema";
import { prepareCertificates, type Certificates } from "./server/certificates";
import { HealthMonitor } from "./observability/health";
import type { Logger } from "./observability/logger";
import { Ping } from "./proxy/ping";
import { PassThrough } from "./proxy/pass-through";
import type { RegistryReads, UpstreamIdentity } from "./proxy/pull-request";
import { parseImageEntry } from "./cache/image-list";
import { openCache, type CacheHandle } from "./cache/open-cache";
import { PinKeeper } from "./cache/pins";
import { prewarm } from "./cache/prewarm";
import { PrewarmSchedule } from "./cache/prewarm-schedule";
import { tagTtl } from "./cache/tag-ttl";
import { openFleet, type Fleet } from "./fleet/fleet";
import { FleetRateLimitStore } from "./fleet/rate-limits";
import { SendfileRedirects } from "./cache/sendfile-redirects";
import { Metrics } from "./observability/metrics";
import { RecentPulls } from "./observability/recent-pulls";
import { accountsFrom } from "./upstream/accounts";
import { AuthDiscovery } from "./upstream/auth-discovery";
import { fallbackAccounts, Fallbacks } from "./upstream/fallbacks";
import { TroubledUpstreams } from "./upstream/troubled-upstreams";
import { UpstreamAuth } from "./upstream/upstream-auth";
import { UpstreamClient } from "./upstream/client";
import { upstreamTableFromConfig, type Upstream, type UpstreamTable } from "./upstream/table";
import { VERSION } from "./version";

export interface Services {
  config: Config;
  log: Logger;
  upstreams: UpstreamTable;
  publicOrigin: PublicOrigin;
  ping: Ping;
  /** Answers registry reads: the cache front, or the bare pass-through when the cache is off or unusable. */
  reads: RegistryReads;
  upstreamAuth: UpstreamAuth;
  guards: Guards;
  /** docxy's own users and tokens, when `[auth] enabled`. */
  proxyAuth: (ProxyAuth & { login: ProxyLogin }) | undefined;
  /** Whose credentials a pull of `upstream` uses upstream (see PullRequest.identity). */
  upstreamIdentity(upstream: Upstream, request: Request): UpstreamIdentity;
  tokens: TokenProxy;
  health: HealthMonitor;
  metrics: Metrics;
  recentPulls: RecentPulls;
  /** The cache's parts, when the cache is on and usable. */
  cache: CacheHandle | undefined;
  /** Keeps `[cache] pin` images cached; undefined without a usable cache. */
  pins: PinKeeper | undefined;
  /** `[prewarm]` runs (and lists posted to the admin API); undefined without a usable cache. */
  prewarm: PrewarmSchedule | undefined;
  /** Set when `[fleet] redis_url` is: this node coordinates fills with the others and serves them theirs. */
  fleet: Fleet | undefined;
  /** Set when `[server] sendfile_enabled` and the cache is usable: the sendfile port's tickets. */
  sendfile: SendfileRedirects | undefined;
  /** The HTTPS certificate and its ACME challenges, when HTTPS is on. */
  certificates: Certificates;
  /** Re-reads what can change while running (the certificate). */
  reload: () => Record<string, string>;
}

export interface ServicesOptions {
  /** Where credential references (`env:NAME`) are read. */
  env?: Record<string, string | undefined>;
  /** Given when prepared beforehand (main.ts checks them before anything starts). */
  certificates?: Certificates;
}

export async function createServices(config: Config, log: Logger, options: ServicesOptions = {}): Promise<Services> {
  const { env = process.env, certificates = prepareCertificates(config, log) } = options;
  const upstreams = upstreamTableFromConfig(config);
  const { header_timeout, idle_timeout, ping_timeout, max_redirects } = config.upstream;
  const fleet = openFleet(config, log);
  // The metrics read parts created below, at scrape time.
  let cache: CacheHandle | undefined;
  let opened: Awaited<ReturnType<typeof openCache>> | undefined;
  let upstreamAuth: UpstreamAuth | undefined;
  let health: HealthMonitor | undefined;
  let prewarmSchedule: PrewarmSchedule | undefined;
  const metrics = new Metrics({
    cacheBytes: () => cache?.index.totalBytes() ?? 0,
    cacheEntries: () => cache?.index.entries() ?? 0,
    cachePinned: () => cache?.index.pinned() ?? { bytes: 0, entries: 0 },
    prewarm: () => prewarmSchedule?.status(),
    fleetCacheBytes: () => cache?.fleetBytes(),
    fillsInProgress: () => cache?.blobs.fillsInProgress ?? 0,
    fillsRefused: () => cache?.blobs.fillsRefused ?? {},
    fleetCoordination: () => fleet?.state(),
    storageFailures: () => opened?.storage?.().failures ?? 0,
    upstreams: () => health?.known() ?? [],
    accounts: () =>
      upstreams.all.flatMap((u) => (upstreamAuth?.accountsOf(u) ?? []).map((a) => ({ upstream: u.name, account: a.username, remaining: a.remaining }))),
  });
  const client = new UpstreamClient(
    { headerMs: header_timeout * 1000, idleMs: idle_timeout * 1000, maxRedirects: max_redirects },
    `docxy/${VERSION}`,
    {
      answered: (host, method, status, seconds) => metrics.upstreamAnswered(host, method, status, seconds),
      failed: (host, reason) => metrics.upstreamFailed(host, reason),
    },
    env,
  );
  const discovery = new AuthDiscovery(client, ping_timeout * 1000);
  const accounts = new Map(
    // Indexed before entries without credentials are skipped: the key named is the one written.
    config.registry.upstreams.flatMap((entry, i) =>
      entry.credentials?.length ? [[upstreams.byName(entry.name)?.name ?? entry.name, accountsFrom(entry.credentials, `registry.upstreams[${i}].credentials`, env)] as const] : [],
    ),
  );
  for (const [name, list] of fallbackAccounts(config, upstreams, env)) accounts.set(name, list);
  upstreamAuth = new UpstreamAuth(client, discovery, accounts, fleet?.upstreamTokens);
  // In a fleet the request and login counts are the fleet's, so a client's budget is not multiplied by the nodes.
  const rateLimits = fleet ? new FleetRateLimitStore(fleet.redis) : new MemoryRateLimitStore();
  const proxyAuth = config.auth.enabled ? await openProxyAuth(config.auth, log, rateLimits) : undefined;
  const guards = await openGuards(config, log, rateLimits, upstreams);
  const troubled = new TroubledUpstreams({
    changed: (upstream, skippedForMs) => {
      metrics.fallbacksFirst.set({ upstream }, skippedForMs === undefined ? 0 : 1);
      if (skippedForMs === undefined) log.info("upstream answers again: it is asked before its fallbacks", { upstream });
      else log.warn("upstream in trouble: its fallbacks are asked first, and it again after a while", { upstream, seconds: skippedForMs / 1000 });
    },
  });
  const fallbacks = new Fallbacks(
    {
      answered: (upstream, source) => metrics.upstreamSources.inc({ upstream, source }),
      tried: (upstream, source, outcome) => metrics.fallbacks.inc({ upstream, source, outcome }),
    },
    troubled,
  );
  const passThrough = new PassThrough(client, discovery, upstreamAuth, fallbacks);
  const sendfile = config.server.sendfile_enabled ? new SendfileRedirects(config.server.sendfile_url || undefined) : undefined;
  const credentials = new CredentialMemory();
  opened = await openCache(config.cache, { remote: passThrough, log, sendfile, credentials, fleet, env });
  cache = opened.cache;
  const pins = cache && keepPins(config, cache, opened.reads, upstreams, log);
  prewarmSchedule = cache && scheduledPrewarm(config, cache, opened.reads, upstreams, log);
  if (!cache && (config.cache.pin.length > 0 || config.prewarm.file)) log.warn("cache.pin and prewarm.file need a usable cache: nothing is pinned or pre-warmed");
  health = new HealthMonitor(upstreams, client, VERSION, ping_timeout * 1000, opened.storage, fleet && (() => fleet.state()), () => cache?.index.pinned());
  const auth = upstreamAuth;
  return {
    config,
    log,
    upstreams,
    publicOrigin: new PublicOrigin(upstreams.all.flatMap((u) => u.hosts)),
    ping: new Ping(client, discovery, ping_timeout * 1000),
    reads: opened.reads,
    upstreamAuth: auth,
    proxyAuth,
    guards,
    upstreamIdentity: (upstream, request) =>
      // docxy's own users pull as docxy; otherwise a client with credentials of its own uses
      // them, and the others pull as docxy when it has an account for that upstream.
      proxyAuth || (!request.headers.has("authorization") && auth.hasAccounts(upstream)) ? "proxy" : "client",
    tokens: new TokenProxy(client, discovery, credentials),
    health,
    metrics,
    recentPulls: new RecentPulls(),
    cache,
    pins,
    prewarm: prewarmSchedule,
    fleet,
    sendfile: cache ? sendfile : undefined,
    certificates,
    reload: () => ({ certificate: certificates.reload() }),
  };
}

/** Starts keeping the `[cache] pin` images (entries were checked at load). */
function keepPins(config: Config, cache: CacheHandle, reads: RegistryReads, upstreams: UpstreamTable, log: Logger): PinKeeper {
  const keeper = new PinKeeper({
    entries: config.cache.pin.map(parseImageEntry),
    reads,
    upstreams,
    index: cache.index,
    ttl: tagTtl(config.cache.tag_ttl, config.cache.tag_ttl_overrides),
    log,
  });
  keeper.start();
  return keeper;
}

/** Starts the `[prewarm]` runs: at start and every interval when a file is set. */
function scheduledPrewarm(config: Config, cache: CacheHandle, reads: RegistryReads, upstreams: UpstreamTable, log: Logger): PrewarmSchedule {
  const schedule = new PrewarmSchedule({
    file: config.prewarm.file,
    intervalMs: config.prewarm.interval,
    warm: (image, platforms) => prewarm(reads, upstreams, image, platforms, { index: cache.index }),
    log,
  });
  schedule.start();
  return schedule;
}

async function openProxyAuth(auth: Config["auth"], log: Logger, store: RateLimitStore): Promise<ProxyAuth & { login: ProxyLogin }> {
  const users = await ProxyUsers.open({
    htpasswdPath: auth.htpasswd || undefined,
    tokens: auth.tokens,
    onReload: (count) => log.info("proxy users loaded", { users: count }),
    onError: (message) => log.warn("proxy users", { problem: message }),
  });
  const tokens = new ProxyTokens({
    secret: ProxyTokens.secretFrom(auth.secret || undefined),
    ttlSeconds: Math.max(60, Math.round(auth.token_ttl / 1000)),
  });
  const throttle = new LoginThrottle({ store, perAddress: auth.failed_logins_per_address, perName: auth.failed_logins_per_user });
  return { users, tokens, login: new ProxyLogin(users, tokens, throttle) };
}

async function openGuards(config: Config, log: Logger, store: RateLimitStore, upstreams: UpstreamTable): Promise<Guards> {
  const { access, policy, limits } = config;
  const perMinute = (limit: number) => (limit > 0 ? new RequestLimiter({ store, limit, windowMs: 60_000 }) : undefined);
  const rules = { allow: policy.allow, deny: policy.deny, allowTags: policy.allow_tags };
  let images: () => ImagePolicy;
  if (policy.file) {
    const served = upstreams.all.map((upstream) => upstream.registry);
    const file = await ImagePolicyFile.open(
      policy.file,
      (error) => log.warn("image policy file not applied, keeping the previous rules", { file: policy.file, error: error.message }),
      served,
    );
    images = () => file.current();
  } else {
    const fixed = new ImagePolicy(rules);
    images = () => fixed;
  }
  const bytesPerSecond = limits.bytes_per_second;
  return {
    network: new NetworkPolicy({ allow: access.allow, deny: access.deny, trustedProxies: access.trusted_proxies }),
    addressLimiter: perMinute(limits.requests_per_minute),
    userLimiter: perMinute(limits.user_requests_per_minute),
    images,
    bandwidth: bytesPerSecond > 0 ? new BandwidthLimiter(bytesPerSecond) : undefined,
  };
}

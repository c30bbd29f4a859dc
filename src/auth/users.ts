/**
 * docxy's own users, when proxy auth is on: an htpasswd file and static
 * `name:token` bearer tokens (for CI systems that cannot run `docker login`).
 *
 * htpasswd: bcrypt only, the one strong hash Apache's `htpasswd -B` writes
 * (`$2y$`; `$2a$`/`$2b$` from other tools). Bun.password.verify accepts all
 * three prefixes as they are (checked on Bun 1.4.5), so hashes are used
 * unchanged. MD5 (`$apr1$`), SHA-1 (`{SHA}`), crypt and plain-text lines are
 * skipped and reported by line number, never with their hash. As in Apache's
 * mod_authn_file: `#` comments and blank lines are ignored, the password field
 * ends at the next `:`, and the first line for a name counts.
 *
 * The file is watched (its directory, so that editors and Kubernetes ConfigMap
 * updates that replace it by rename are seen; the stat signature tells whether
 * the file itself changed) and reloaded. A file that cannot be read or parsed
 * leaves the previous users in place.
 *
 * bcrypt costs 50–100 ms per check at usual costs and Docker sends Basic on
 * every token request, so positive results are cached briefly, keyed by an
 * HMAC of name and password under a per-process random key: neither the
 * password nor a plain (offline-crackable) hash of it is kept.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";

export interface ProxyUsersOptions {
  htpasswdPath?: string;
  /** `name:token` pairs. */
  tokens: string[];
  /** After each successful load of the htpasswd file, the first one included: the number of users. */
  onReload?: (count: number) => void;
  /** A skipped line, or a reload that failed and kept the previous users. Never holds a hash or password. */
  onError?: (message: string) => void;
}

/** A full modular-crypt bcrypt hash: prefix, two-digit cost 04–31, 22 salt + 31 hash characters. */
const BCRYPT = /^\$2[aby]\$(?:0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
/** Long enough to cover one `docker pull` (one token request per image, more for multi-image builds), short enough that a password change takes effect soon; a reload clears it anyway. */
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 1024;
/** The dummy hash's cost while no htpasswd hash is loaded (htpasswd -B's default); every name is unknown then anyway. */
const DEFAULT_COST = 5;
/** Editors and `htpasswd` itself write in several steps; one check after the burst settles. */
const SETTLE_MS = 100;

interface CachedCheck {
  expires: number;
  result: Promise<boolean>;
  /** Set once `result` resolved true. */
  verified?: boolean;
}

interface StaticToken {
  name: string;
  digest: Buffer;
}

type Parsed = { users: Map<string, string>; skipped: string[] } | { error: string };

export class ProxyUsers {
  private users = new Map<string, string>();
  private cache = new Map<string, CachedCheck>();
  private readonly cacheKey = randomBytes(32);
  private signature = "";
  private watcher?: FSWatcher;
  private timer?: ReturnType<typeof setTimeout>;
  private checking = Promise.resolve();
  private closed = false;
  /**
   * A hash of a random password, checked for unknown names so that they take
   * as long as known ones: its cost is the highest among the loaded hashes
   * (bcrypt's time doubles per cost step, so a cheaper dummy tells unknown
   * names apart: 5 ms against 236 ms at cost 12). Remade when a reload changes it.
   */
  private dummy = { cost: DEFAULT_COST, hash: dummyHash(DEFAULT_COST) };

  private constructor(
    private readonly options: ProxyUsersOptions,
    private readonly staticTokens: StaticToken[],
  ) {}

  /** Loads the htpasswd file (failing if it cannot be read or parsed) and starts watching it. */
  static async open(options: ProxyUsersOptions): Promise<ProxyUsers> {
    const users = new ProxyUsers(options, parseStaticTokens(options.tokens));
    if (options.htpasswdPath !== undefined) await users.watchFile(resolve(options.htpasswdPath));
    await users.dummy.hash; // the first unknown name must not pay for making it
    return users;
  }

  async verifyPassword(name: string, password: string): Promise<boolean> {
    const input = bcryptInput(password);
    const hash = this.users.get(name);
    if (hash === undefined) {
      await Bun.password.verify(input, await this.dummy.hash);
      return false;
    }
    const key = this.cacheKeyOf(name, password);
    const cache = this.cache;
    const hit = cache.get(key);
    if (hit && hit.expires > Date.now()) return hit.result;

    // The pending check itself is cached, so concurrent requests with the same credentials share one bcrypt run.
    const result = Bun.password.verify(input, hash);
    cache.delete(key);
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
    const entry: CachedCheck = { expires: Date.now() + CACHE_TTL_MS, result };
    cache.set(key, entry);
    const forget = () => {
      if (cache.get(key)?.result === result) cache.delete(key);
    };
    result.then((ok) => {
      if (ok) entry.verified = true;
      else forget();
    }, forget);
    return result;
  }

  /**
   * Whether these exact credentials verified within the last minute (the
   * cache above), without running bcrypt: the login throttle lets them
   * through, since only the password's holder can present them.
   */
  recentlyVerified(name: string, password: string): boolean {
    const hit = this.cache.get(this.cacheKeyOf(name, password));
    return hit?.verified === true && hit.expires > Date.now();
  }

  /** The user a static token belongs to. Every configured token is compared, each in constant time. */
  verifyStaticToken(token: string): string | undefined {
    const digest = sha256(token);
    let user: string | undefined;
    for (const entry of this.staticTokens) if (timingSafeEqual(entry.digest, digest)) user = entry.name;
    return user;
  }

  /**
   * A short digest of the user's current credentials (htpasswd hash, else
   * their static tokens), or undefined when there is no such user. A refresh
   * token carries it, so that changing a password or removing the user
   * revokes the refresh tokens issued before (see ProxyTokens.verifyRefresh).
   */
  credentialStamp(name: string): string | undefined {
    const material =
      this.users.get(name) ??
      this.staticTokens
        .filter((entry) => entry.name === name)
        .map((entry) => entry.digest.toString("hex"))
        .join(" ");
    return material === "" ? undefined : sha256(material).subarray(0, 16).toString("base64url");
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    clearTimeout(this.timer);
  }

  private cacheKeyOf(name: string, password: string): string {
    return createHmac("sha256", this.cacheKey).update(JSON.stringify([name, password])).digest("base64");
  }

  private async watchFile(path: string): Promise<void> {
    // Watching starts before the first read, so a change during that read is not missed.
    this.watcher = watch(dirname(path), { persistent: false }, () => this.scheduleCheck(path));
    this.watcher.on("error", (error) => this.options.onError?.(`watching ${path} failed: ${error.message}`));
    try {
      const signature = await fileSignature(path);
      const parsed = parseHtpasswd(await readFile(path, "utf8"), path);
      if ("error" in parsed) throw new Error(parsed.error);
      this.apply(parsed, signature);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  private scheduleCheck(path: string): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.checking = this.checking.then(() => this.check(path));
    }, SETTLE_MS);
  }

  /** Reloads when the file's stat signature changed since the last load or failed attempt. */
  private async check(path: string): Promise<void> {
    if (this.closed) return;
    let signature: string;
    let parsed: Parsed;
    try {
      signature = await fileSignature(path);
      if (signature === this.signature) return;
      parsed = parseHtpasswd(await readFile(path, "utf8"), path);
    } catch (error) {
      signature = "unreadable";
      if (signature === this.signature) return;
      parsed = { error: `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (this.closed) return;
    if ("error" in parsed) {
      this.signature = signature; // reported once, not again on every unrelated event in the directory
      this.options.onError?.(`${parsed.error}; keeping the previous ${this.users.size} user(s)`);
      return;
    }
    this.apply(parsed, signature);
  }

  private apply(parsed: { users: Map<string, string>; skipped: string[] }, signature: string): void {
    for (const message of parsed.skipped) this.options.onError?.(message);
    this.users = parsed.users;
    const costs = [...parsed.users.values()].map(bcryptCost);
    const cost = costs.length > 0 ? costs.reduce((a, b) => Math.max(a, b)) : DEFAULT_COST;
    if (cost !== this.dummy.cost) this.dummy = { cost, hash: dummyHash(cost) };
    this.cache = new Map(); // results for removed users or changed passwords must not outlive the change
    this.signature = signature;
    this.options.onReload?.(parsed.users.size);
  }
}

function parseHtpasswd(text: string, path: string): Parsed {
  const users = new Map<string, string>();
  const firstLine = new Map<string, number>();
  const skipped: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    const at = `${path}:${index + 1}`;
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return { error: `${at}: not a "name:password-hash" line` };
    const name = line.slice(0, colon);
    const hash = line.slice(colon + 1).split(":")[0]!;
    if (/^\$2[aby]\$/.test(hash) && !BCRYPT.test(hash)) return { error: `${at}: malformed bcrypt hash` };
    if (!BCRYPT.test(hash)) {
      skipped.push(`${at}: unsupported password hash (${hashKind(hash)}), line skipped; use bcrypt (htpasswd -B)`);
    } else if (firstLine.has(name)) {
      skipped.push(`${at}: user ${JSON.stringify(name)} already defined on line ${firstLine.get(name)}, line skipped`);
    } else {
      users.set(name, hash);
      firstLine.set(name, index + 1);
    }
  }
  return { users, skipped };
}

/** The cost of a hash that matched BCRYPT: the two digits after the prefix (`$2y$12$…`). */
function bcryptCost(hash: string): number {
  return Number(hash.slice(4, 6));
}

function dummyHash(cost: number): Promise<string> {
  return Bun.password.hash(randomBytes(16).toString("hex"), { algorithm: "bcrypt", cost });
}

function hashKind(hash: string): string {
  if (hash.startsWith("$apr1$")) return "MD5 $apr1$";
  if (hash.startsWith("{SHA}")) return "SHA-1 {SHA}";
  if (hash.startsWith("$")) return "crypt(3)";
  return "plain text or DES crypt";
}

function parseStaticTokens(tokens: string[]): StaticToken[] {
  const seen = new Map<string, number>();
  return tokens.map((entry, index) => {
    const colon = entry.indexOf(":");
    // The messages name the entry's position only: the entry holds the token.
    if (colon <= 0 || colon === entry.length - 1) throw new Error(`static token ${index + 1}: expected "name:token"`);
    const digest = sha256(entry.slice(colon + 1));
    const hex = digest.toString("hex");
    const same = seen.get(hex);
    if (same !== undefined) throw new Error(`static tokens ${same} and ${index + 1} are the same token`);
    seen.set(hex, index + 1);
    return { name: entry.slice(0, colon), digest };
  });
}

/**
 * bcrypt reads at most 72 bytes of password and crypt_blowfish (htpasswd -B)
 * ignores the rest, but Bun pre-hashes longer passwords with SHA-512
 * (checked on 1.4.5), which would never match such a hash. Cutting at 72
 * bytes gives the standard behaviour.
 */
function bcryptInput(password: string): Uint8Array {
  return new TextEncoder().encode(password).subarray(0, 72);
}

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/** Changes when the file is rewritten in place (mtime, size) or replaced (inode). */
async function fileSignature(path: string): Promise<string> {
  const info = await stat(path, { bigint: true });
  return `${info.ino}:${info.size}:${info.mtimeNs}`;
}

/**
 * The upstream accounts docxy pulls with on behalf of clients that bring no
 * credentials, and which one to use next. Docker Hub reports each account's
 * remaining pulls in `ratelimit-remaining: <n>;w=<seconds>` (protocol.md
 * fact 13); an account at zero is rested until its window ends, and the one
 * with the most quota left goes first. Secrets live only in these objects:
 * `toString`/`toJSON` never show them.
 */
import { readFileSync } from "node:fs";
import type { CredentialEntry } from "../config/schema";

/**
 * Docker Hub counts pulls over 6 hours (`w=21600`: 100 anonymous, 200 for a
 * Personal account; the hourly limits announced for April 2025 were never
 * enforced, research/peers.md "Update 2026-12-02"). Used when a header omits `w=`.
 */
const DOCKER_HUB_WINDOW_S = 21_600;

export class Account {
  remaining: number | undefined;
  restedUntil = 0;

  constructor(
    readonly username: string,
    private readonly secret: () => string,
  ) {}

  basic(): string {
    return `Basic ${Buffer.from(`${this.username}:${this.secret()}`).toString("base64")}`;
  }

  /** Reads Docker Hub's quota headers after a request made with this account. */
  observe(headers: Headers, now = Date.now()): void {
    const match = /^\s*(\d+)\s*(?:;\s*w=(\d+))?/.exec(headers.get("ratelimit-remaining") ?? "");
    if (!match) return;
    this.remaining = Number(match[1]);
    if (this.remaining === 0) this.restedUntil = now + Number(match[2] ?? DOCKER_HUB_WINDOW_S) * 1000;
  }

  toString(): string {
    return `account ${this.username}`;
  }

  toJSON(): { username: string; remaining: number | undefined } {
    return { username: this.username, remaining: this.remaining };
  }
}

/**
 * The account to use now: not rested, most quota left (unknown counts as
 * plenty). When all are rested, the one back soonest (the upstream will say
 * whether it is).
 */
export function pickAccount(accounts: readonly Account[], now = Date.now()): Account | undefined {
  const usable = accounts.filter((a) => a.restedUntil <= now);
  if (usable.length === 0) return [...accounts].sort((a, b) => a.restedUntil - b.restedUntil)[0];
  return [...usable].sort((a, b) => (b.remaining ?? Number.MAX_SAFE_INTEGER) - (a.remaining ?? Number.MAX_SAFE_INTEGER))[0];
}

/** Accounts from config; a secret that cannot be read is a startup error naming the key. */
export function accountsFrom(entries: CredentialEntry[], key: string, env: Record<string, string | undefined>): Account[] {
  return entries.map((entry, i) => {
    const where = `${key}[${i}]`;
    const sources = [entry.password, entry.password_file, entry.password_env].filter((v) => v !== undefined);
    if (sources.length !== 1) throw new Error(`${where}: set exactly one of password, password_file, password_env`);
    let secret: string;
    if (entry.password !== undefined) secret = entry.password;
    else if (entry.password_env !== undefined) {
      const value = env[entry.password_env];
      if (value === undefined) throw new Error(`${where}.password_env: ${entry.password_env} is not set`);
      secret = value;
    } else {
      try {
        secret = readFileSync(entry.password_file!, "utf8").split("\n")[0]!.trim();
      } catch (error) {
        throw new Error(`${where}.password_file: cannot read ${entry.password_file} (${(error as NodeJS.ErrnoException).code})`);
      }
    }
    return new Account(entry.username, () => secret);
  });
}

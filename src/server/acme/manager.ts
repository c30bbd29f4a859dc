/**
 * Built-in ACME (RFC 8555): docxy gets and renews its own HTTPS certificate
 * from Let's Encrypt (or any ACME CA), without certbot or a cron job.
 *
 * - `ensureCertificate()` at startup: a stored certificate that is still
 *   valid for the configured names and CA is used as is (no order); else one
 *   is ordered now. Needs the plain-HTTP listener up first, answering
 *   `challengeResponse` (HTTP-01, see challenges.ts).
 * - `start()`: renewal in the background once less than a third of the
 *   lifetime is left, checked at the renewal time and at least every
 *   `checkIntervalMs`; a failed renewal is retried with backoff while the
 *   old certificate keeps serving.
 * - every new certificate is written to `dir` (storage.ts) and announced
 *   through `onCertificate`, which the caller points at
 *   `CertificateStore.reload()` (whose paths are `certPath`/`keyPath`).
 *
 * Tested against a real ACME CA (Pebble): tests/server/acme/pebble.test.ts.
 */
import * as acme from "acme-client";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { isIP } from "node:net";
import type { Logger } from "../../observability/logger";
import { Http01Challenges } from "./challenges";
import { probeDirectory } from "./directory";
import { orderCertificate } from "./order";
import { coversNames, DEFAULT_RENEW_FRACTION, renewalTime, whyIssueNow } from "./renewal";
import { AcmeStorage } from "./storage";

export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";

export interface AcmeOptions {
  /** The CA's directory URL (`[tls] acme_directory`). */
  directoryUrl: string;
  /** DNS names and IP addresses for the certificate, first one first (`[tls] acme_domains`). */
  names: readonly string[];
  /** Contact for expiry notices from the CA (`[tls] acme_email`), optional. */
  email?: string;
  /** Where the account key and certificates live (`[tls] acme_dir`). */
  dir: string;
  /** PEM file of the CA that signs the directory's HTTPS certificate, for private or test CAs (`[tls] acme_ca_root`). */
  caRootPath?: string;
  /** Renew when less than this part of the lifetime is left (default 1/3). */
  renewFraction?: number;
  /** Longest wait between two renewal checks (default 12 h). */
  checkIntervalMs?: number;
  /** Wait after a failed renewal, doubled on each further failure up to checkIntervalMs (default 10 min). */
  retryMs?: number;
  /** A new certificate is on disk at certPath/keyPath. */
  onCertificate?: (paths: { certPath: string; keyPath: string }) => void;
  log?: Logger;
}

const DEFAULT_CHECK_INTERVAL_MS = 12 * 60 * 60 * 1000;
const DEFAULT_RETRY_MS = 10 * 60 * 1000;

export class AcmeManager {
  readonly challenges = new Http01Challenges();
  readonly #storage: AcmeStorage;
  readonly #names: string[];
  #client: acme.Client | undefined;
  /** set when acme_ca_root is: trusts that root for the directory's HTTPS */
  readonly #agent: https.Agent | undefined;
  #ordering: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  #running = false;

  constructor(private readonly options: AcmeOptions) {
    this.#names = checkNames(options.names);
    this.#storage = new AcmeStorage(options.dir);
    if (options.caRootPath) {
      this.#agent = new https.Agent({ ca: readFileSync(options.caRootPath, "utf8"), keepAlive: true });
      // acme-client sends everything through one shared axios instance, so its trust is
      // process-wide; docxy talks to a single ACME CA.
      acme.axios.defaults.httpsAgent = this.#agent;
    }
    if (options.log) {
      const log = options.log;
      acme.setLogger((message) => log.debug("acme-client", { detail: message }));
    }
  }

  get certPath(): string {
    return this.#storage.certPath;
  }

  get keyPath(): string {
    return this.#storage.keyPath;
  }

  /** For the plain-HTTP listener: the body for `GET /.well-known/acme-challenge/<token>`, if pending. */
  readonly challengeResponse = (token: string): string | undefined => this.challenges.response(token);

  /**
   * Makes sure certPath/keyPath hold a certificate HTTPS can serve now: "stored" when the one
   * on disk does (renewal, if due, is left to `start()`), "issued" when one was just ordered.
   * Throws when ordering fails; there is then nothing to serve HTTPS with.
   */
  async ensureCertificate(): Promise<"stored" | "issued"> {
    const reason = whyIssueNow(this.#storage.readCertificate(), { names: this.#names, directoryUrl: this.options.directoryUrl });
    if (reason === undefined) return "stored";
    this.options.log?.info("acme: ordering a certificate", { reason, names: this.#names.join(","), directory: this.options.directoryUrl });
    await this.renew();
    return "issued";
  }

  /** Orders a certificate now, stores it and announces it (one order at a time). */
  renew(): Promise<void> {
    this.#ordering ??= this.#order().finally(() => (this.#ordering = undefined));
    return this.#ordering;
  }

  /** Starts the renewal checks (the first one right away). */
  start(): void {
    this.#running = true;
    this.#schedule(0);
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  async #order(): Promise<void> {
    await probeDirectory(this.options.directoryUrl, this.#agent);
    const client = await this.#account();
    const issued = await orderCertificate(client, this.#names, this.challenges);
    const leaf = new X509Certificate(issued.cert);
    // Never replace a working certificate with one HTTPS could not use.
    if (!leaf.checkPrivateKey(createPrivateKey(issued.key)) || !coversNames(leaf, this.#names)) {
      throw new Error(`ACME: the CA returned a certificate that does not match the order (${leaf.subjectAltName})`);
    }
    this.#storage.writeCertificate(issued.cert, issued.key, { directoryUrl: this.options.directoryUrl, names: this.#names });
    this.options.log?.info("acme: certificate stored", {
      names: this.#names.join(","),
      not_after: leaf.validToDate.toISOString(),
      path: this.#storage.certPath,
    });
    this.options.onCertificate?.({ certPath: this.#storage.certPath, keyPath: this.#storage.keyPath });
  }

  /** The account, registered (or found again by its key) once per process. */
  async #account(): Promise<acme.Client> {
    if (this.#client) return this.#client;
    let accountKey = this.#storage.readAccountKey();
    if (accountKey === undefined) {
      accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
      this.#storage.writeAccountKey(accountKey);
    }
    // Polling: first look after 1 s, then 2, 4, 8 and every 10 s, about a minute in all.
    const client = new acme.Client({ directoryUrl: this.options.directoryUrl, accountKey, backoffAttempts: 10, backoffMin: 1000, backoffMax: 10_000 });
    // Registering an existing key returns the existing account (RFC 8555 §7.3.1), so this is also the lookup.
    // Configuring ACME is taken as agreeing to the CA's terms, as Caddy does.
    await client.createAccount({ termsOfServiceAgreed: true, contact: this.options.email ? [`mailto:${this.options.email}`] : undefined });
    this.#client = client;
    return client;
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    clearTimeout(this.#timer);
    const checkInterval = this.options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    // Capped: a long certificate's renewal date is further away than setTimeout can count (24.8 days).
    this.#timer = setTimeout(() => void this.#check(), Math.max(0, Math.min(delayMs, checkInterval)));
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    let stored;
    try {
      const wait = this.#dueAt().getTime() - Date.now();
      if (wait > 0) return this.#schedule(wait);
      stored = this.#storage.readCertificate();
      await this.renew();
      // A CA that hands out a certificate already due again would make this loop: back off instead.
      if (this.#dueAt().getTime() <= Date.now()) throw new Error("the new certificate is already due for renewal");
      this.#failures = 0;
      this.#schedule(this.#dueAt().getTime() - Date.now());
    } catch (error) {
      this.#failures++;
      const checkInterval = this.options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
      const retry = Math.min((this.options.retryMs ?? DEFAULT_RETRY_MS) * 2 ** (this.#failures - 1), checkInterval);
      this.options.log?.warn("acme: renewal failed; the current certificate stays", {
        error: (error as Error).message,
        retry_in_s: Math.round(retry / 1000),
        not_after: stored?.certificate.validToDate.toISOString(),
      });
      this.#schedule(retry);
    }
  }

  /** When the stored certificate must be replaced: now if it is missing or unusable. */
  #dueAt(): Date {
    const stored = this.#storage.readCertificate();
    const wanted = { names: this.#names, directoryUrl: this.options.directoryUrl };
    if (!stored || whyIssueNow(stored, wanted) !== undefined) return new Date(0);
    return renewalTime(stored.certificate, this.options.renewFraction ?? DEFAULT_RENEW_FRACTION);
  }
}

/** Lower-cased, de-duplicated names an HTTP-01 order can cover. */
function checkNames(names: readonly string[]): string[] {
  const checked = [...new Set(names.map((n) => n.trim().toLowerCase()).filter((n) => n !== ""))];
  if (checked.length === 0) throw new Error("tls.acme_domains: at least one name is needed");
  for (const name of checked) {
    if (name.includes("*")) throw new Error(`tls.acme_domains: ${name}: wildcard names need DNS-01, which docxy does not do`);
    if (!isIP(name) && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(name)) {
      throw new Error(`tls.acme_domains: ${name} is neither a DNS name nor an IP address`);
    }
  }
  return checked;
}

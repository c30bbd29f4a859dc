/**
 * The HTTPS certificate while docxy runs: reloaded when its files change
 * (certbot, cert-manager, our own ACME client) or on demand (SIGHUP), and put
 * on the running listeners without a restart (see tls-apply.ts for how).
 *
 * New material is checked before it replaces the old: `loadTls` (both files
 * parse), the key belongs to the certificate, and the certificate has not
 * expired. Anything else keeps the old certificate and is reported through
 * `onError`, so a half-written or wrong file never takes HTTPS down.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { statSync, watch, type FSWatcher } from "node:fs";
import type https from "node:https";
import { dirname, resolve } from "node:path";
import { applyCertificate } from "./tls-apply";
import { loadTls, type TlsFiles } from "./tls";

export interface CertificateStoreOptions {
  certPath: string;
  keyPath: string;
  /** New material was swapped in. */
  onReload?: (tls: TlsFiles, certificate: X509Certificate) => void;
  /** New material was rejected (the old certificate stays), or a listener could not take it. */
  onError?: (error: Error) => void;
  /** Watch the files' directories (default true). */
  watch?: boolean;
  /** Let a burst of file events settle before reading (a key and a certificate are rarely written at once). */
  debounceMs?: number;
  /**
   * Also stat the files this often (0: never). fs.watch misses changes on network file systems and
   * through some bind mounts; two stat calls a minute are free.
   */
  pollMs?: number;
}

export type ReloadResult = "reloaded" | "unchanged" | "rejected";

const DEFAULT_DEBOUNCE_MS = 250;
const DEFAULT_POLL_MS = 60_000;

export class CertificateStore {
  #tls: TlsFiles;
  #certificate: X509Certificate;
  /** stat identity of the two files when last read, to skip reading unchanged files on every event */
  #stamp: string;
  /** stamp of files already rejected, so a bad file is reported once, not on every poll */
  #rejectedStamp: string | undefined;
  readonly #listeners = new Set<(tls: TlsFiles) => void>();
  readonly #watchers: FSWatcher[] = [];
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** Loads and checks the files now; throws (with the config key in the message) when they are unusable. */
  static open(options: CertificateStoreOptions): CertificateStore {
    const { tls, certificate } = readChecked(options.certPath, options.keyPath, { allowExpired: true });
    return new CertificateStore(options, tls, certificate, stampOf(options.certPath, options.keyPath));
  }

  private constructor(
    private readonly options: CertificateStoreOptions,
    tls: TlsFiles,
    certificate: X509Certificate,
    stamp: string,
  ) {
    this.#tls = tls;
    this.#certificate = certificate;
    this.#stamp = stamp;
    if (options.watch !== false) this.#watch();
    const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    if (pollMs > 0) {
      this.#poll = setInterval(() => this.#check(false), pollMs);
      this.#poll.unref();
    }
  }

  /** The PEMs to create an https.Server with. */
  get current(): TlsFiles {
    return this.#tls;
  }

  get certificate(): X509Certificate {
    return this.#certificate;
  }

  /** Reads the files now, whether or not they look changed (SIGHUP). */
  reload(): ReloadResult {
    return this.#check(true);
  }

  /** Called with the new PEMs after each swap. Returns the unsubscribe function. */
  subscribe(listener: (tls: TlsFiles) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Keeps a listening https.Server on the current certificate from now on. Call it after
   * `listen()`; it lets go of the server once the server is closed for good.
   */
  attach(server: https.Server): () => void {
    let queue = Promise.resolve();
    let swapping = false;
    const unsubscribe = this.subscribe((tls) => {
      // One swap at a time per server: a second change waits for the first listen() to finish.
      queue = queue.then(async () => {
        swapping = true;
        try {
          await applyCertificate(server, tls);
        } catch (error) {
          this.options.onError?.(error as Error);
        } finally {
          swapping = false;
        }
      });
    });
    const onClose = () => {
      // A swap closes and reopens the listening socket, and Bun may report that 'close' after the
      // new socket is already listening: only a server that stays closed is done with.
      if (!server.listening && !swapping) detach();
    };
    const detach = () => {
      unsubscribe();
      server.off("close", onClose);
    };
    server.on("close", onClose);
    return detach;
  }

  /** Stops watching and polling; attached servers keep the certificate they have. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers.length = 0;
    this.#listeners.clear();
  }

  #watch(): void {
    // Directories, not files: editors, certbot (symlink swap) and Kubernetes secrets (`..data`
    // rename) replace files by rename, which ends a watch on the file itself. Any event in the
    // directory only triggers a stat comparison, so unrelated files cost next to nothing.
    const dirs = new Set([dirname(resolve(this.options.certPath)), dirname(resolve(this.options.keyPath))]);
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#schedule());
        watcher.on("error", () => watcher.close()); // e.g. the directory was removed: polling still covers it
        this.#watchers.push(watcher);
      } catch {
        // Not watchable (permissions, exotic FS): polling still covers it.
      }
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#check(false), this.options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    this.#debounce.unref();
  }

  #check(force: boolean): ReloadResult {
    if (this.#closed) return "unchanged";
    const { certPath, keyPath } = this.options;
    let stamp: string;
    try {
      stamp = stampOf(certPath, keyPath);
    } catch (error) {
      // A file missing for a moment while a tool replaces it: look again on the next event or poll.
      if (force) this.options.onError?.(error as Error);
      return force ? "rejected" : "unchanged";
    }
    if (!force && (stamp === this.#stamp || stamp === this.#rejectedStamp)) return "unchanged";
    let next: { tls: TlsFiles; certificate: X509Certificate };
    try {
      next = readChecked(certPath, keyPath, { allowExpired: false });
    } catch (error) {
      this.#rejectedStamp = stamp;
      this.options.onError?.(error as Error);
      return "rejected";
    }
    this.#stamp = stamp;
    this.#rejectedStamp = undefined;
    if (next.tls.cert === this.#tls.cert && next.tls.key === this.#tls.key) return "unchanged";
    this.#tls = next.tls;
    this.#certificate = next.certificate;
    this.options.onReload?.(next.tls, next.certificate);
    for (const listener of this.#listeners) listener(next.tls);
    return "reloaded";
  }
}

/** `loadTls` plus the checks a running server needs before it swaps: matching key, not expired. */
function readChecked(certPath: string, keyPath: string, { allowExpired }: { allowExpired: boolean }) {
  const tls = loadTls(certPath, keyPath);
  const certificate = new X509Certificate(tls.cert); // the first PEM block: the leaf
  if (!certificate.checkPrivateKey(createPrivateKey(tls.key))) {
    throw new Error(`tls.key_path: ${keyPath} is not the key of the certificate in ${certPath}`);
  }
  // At startup an expired certificate is the operator's choice (loadTls accepts it too); a reload
  // must not replace a working certificate with a dead one.
  if (!allowExpired && certificate.validToDate.getTime() <= Date.now()) {
    throw new Error(`tls.cert_path: ${certPath} expired on ${certificate.validToDate.toISOString()}`);
  }
  return { tls, certificate };
}

/** Identity of both files as they are now (following symlinks): inode, size and mtime. */
function stampOf(certPath: string, keyPath: string): string {
  return [certPath, keyPath]
    .map((path) => {
      const s = statSync(path, { bigint: true });
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
    })
    .join("|");
}

/**
 * Image rules from a TOML file, reloaded while the proxy runs:
 *
 *     allow = ["docker.io/library/*", "ghcr.io/myorg/**"]
 *     deny = ["docker.io/library/ubuntu"]
 *     allow_tags = ["v*", "latest"]
 *
 * The watch is on the file's directory, not the file: editors and
 * configuration tools replace a file by renaming another over it, and
 * Kubernetes swaps a ConfigMap by re-pointing a `..data` symlink beside it, so
 * a watch on the file itself goes deaf after the first change. Any event in
 * the directory costs one stat; the file is read again only when its inode,
 * size or mtime moved, or when the event names it. A slow poll does the same
 * check for filesystems that send no events (network and some container
 * mounts).
 *
 * A file that cannot be read or parsed leaves the previous rules in force and
 * is reported through `onError`; a broken edit must not open the proxy up.
 */
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { ImagePolicy, type ImageRules } from "./image-rules";

/**
 * Events arrive while a file is still being written (truncate, then write),
 * and a half-written file can parse as fewer deny rules, or none. Reading
 * once the directory has been quiet this long keeps that window small;
 * writing the file elsewhere and renaming it over closes it.
 */
const SETTLE_MS = 50;
const POLL_MS = 5000;

const KEYS = { allow: "allow", deny: "deny", allow_tags: "allowTags" } as const;

export class ImagePolicyFile {
  private readonly watcher: FSWatcher;
  private readonly poll: ReturnType<typeof setInterval>;
  private settle: ReturnType<typeof setTimeout> | undefined;
  /** Whether an event named the file since the last reload. */
  private named = false;
  private reloads: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly onError: (error: Error) => void,
    private policy: ImagePolicy,
    private fingerprint: string,
    private readonly served: readonly string[] | undefined,
  ) {
    const name = basename(path);
    this.watcher = watch(dirname(path), (_event, filename) => this.changed(filename === name));
    this.watcher.on("error", (error) => onError(error));
    this.poll = setInterval(() => this.changed(false), POLL_MS);
    this.poll.unref();
  }

  /**
   * Loads the file; rejects when it cannot be read or parsed, since there are no previous rules to keep.
   * `served`: the registries docxy serves; a rule for any other is refused (image-rules.ts), at a reload too.
   */
  static async open(path: string, onError: (error: Error) => void, served?: readonly string[]): Promise<ImagePolicyFile> {
    // The fingerprint is taken before the read: a change in between is then seen as one more change.
    const fingerprint = await fingerprintOf(path);
    return new ImagePolicyFile(path, onError, await loadPolicy(path, served), fingerprint, served);
  }

  /** The rules in force now; ask per request, as a reload replaces them. */
  current(): ImagePolicy {
    return this.policy;
  }

  close(): void {
    this.closed = true;
    this.watcher.close();
    clearInterval(this.poll);
    clearTimeout(this.settle);
  }

  private changed(named: boolean): void {
    this.named ||= named;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      const force = this.named;
      this.named = false;
      // One reload at a time, so an older read can never land after a newer one.
      this.reloads = this.reloads.then(() => this.reload(force));
    }, SETTLE_MS);
  }

  private async reload(force: boolean): Promise<void> {
    const fingerprint = await fingerprintOf(this.path);
    if (this.closed || (fingerprint === this.fingerprint && !force)) return;
    // Recorded even when loading fails, so the poll reports a broken file once, not every round.
    this.fingerprint = fingerprint;
    try {
      const policy = await loadPolicy(this.path, this.served);
      if (!this.closed) this.policy = policy;
    } catch (error) {
      this.onError(error as Error);
    }
  }
}

/** Identifies a version of the file cheaply; stat follows symlinks, so a re-pointed link shows up as a new inode. */
function fingerprintOf(path: string): Promise<string> {
  return stat(path).then(
    (stats) => `${stats.ino}:${stats.size}:${stats.mtimeMs}`,
    () => "unreadable",
  );
}

async function loadPolicy(path: string, served: readonly string[] | undefined): Promise<ImagePolicy> {
  try {
    return new ImagePolicy(parseRules(await readFile(path, "utf8")), served);
  } catch (error) {
    throw new Error(`image policy ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Unknown keys are errors: a misspelt `deny` would otherwise be a rule
 * silently not applied.
 */
function parseRules(text: string): ImageRules {
  const table = Bun.TOML.parse(text) as Record<string, unknown>;
  const rules: ImageRules = { allow: [], deny: [], allowTags: [] };
  for (const [key, value] of Object.entries(table)) {
    if (!Object.hasOwn(KEYS, key)) throw new Error(`unknown key ${JSON.stringify(key)} (expected allow, deny, allow_tags)`);
    // One rule may be written as a string, as every list of the configuration file may.
    const list: unknown = typeof value === "string" ? [value] : value;
    if (!Array.isArray(list) || !list.every((item) => typeof item === "string")) {
      throw new Error(`${key} must be a string or an array of strings`);
    }
    rules[KEYS[key as keyof typeof KEYS]] = list;
  }
  return rules;
}

/**
 * A private containerd 1.6 (Debian) for `ctr` pulls (protocol.md §5): a version 2 config with
 * root, state and the grpc/ttrpc/debug sockets in a temp dir, metrics off, and the plugins that
 * cannot or need not run here (cri, btrfs, zfs, devmapper, aufs) disabled.
 *
 * Mirrors use a hosts directory (protocol.md §4.3, fact 16): `<hostsDir>/docker.io/hosts.toml`
 * with the real `server` and a `[host]` table for docxy. A file with only `server =` is silently
 * rejected by 1.6.20, so the `[host]` table is what makes ctr use docxy at all.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { baseEnv, removeDir, run, startDaemon, tempDir, type Daemon, type RunResult } from "./process";

export const CONTAINERD_BIN = "/usr/bin/containerd";
export const CTR_BIN = "/usr/bin/ctr";

export interface Containerd {
  dir: string;
  /** containerd's root: the content store is under io.containerd.content.v1.content/blobs */
  root: string;
  /** pass as `--hosts-dir`: each mirrored registry (docker.io by default) points at docxy */
  hostsDir: string;
  daemon: Daemon;
  ctr(args: string[], timeoutMs?: number): Promise<RunResult>;
  ctrOk(args: string[], timeoutMs?: number): Promise<string>;
  /** the on-disk blob of a digest in the content store */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

export function containerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "containerd needs root (snapshotters mount)";
  for (const bin of [CONTAINERD_BIN, CTR_BIN]) {
    if (!existsSync(bin)) return `${bin} is missing: apt-get install -y containerd`;
  }
  return undefined;
}

const DISABLED_PLUGINS = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
];

/** The registry's own endpoint, the `server` of its hosts.toml (Docker Hub's differs from its name). */
const serverOf = (registry: string) => (registry === "docker.io" ? "https://registry-1.docker.io" : `https://${registry}`);

export async function startContainerd(settings: { mirrorHost: string; registries?: string[] }): Promise<Containerd> {
  const dir = tempDir("containerd");
  const root = join(dir, "root");
  const socket = join(dir, "containerd.sock");
  const config = `version = 2
root = ${JSON.stringify(root)}
state = ${JSON.stringify(join(dir, "state"))}
disabled_plugins = ${JSON.stringify(DISABLED_PLUGINS)}

[grpc]
  address = ${JSON.stringify(socket)}
[ttrpc]
  address = ${JSON.stringify(`${socket}.ttrpc`)}
[debug]
  address = ${JSON.stringify(join(dir, "debug.sock"))}
[metrics]
  address = ""
`;
  writeFileSync(join(dir, "config.toml"), config);

  const hostsDir = join(dir, "hosts.d");
  for (const registry of settings.registries ?? ["docker.io"]) {
    mkdirSync(join(hostsDir, registry), { recursive: true });
    // Only pull and resolve: docxy is a pull proxy (hosts.md: a public mirror should not get push).
    writeFileSync(
      join(hostsDir, registry, "hosts.toml"),
      `server = "${serverOf(registry)}"

[host."http://${settings.mirrorHost}"]
  capabilities = ["pull", "resolve"]
`,
    );
  }

  const ctr = (args: string[], timeoutMs = 120_000) => run([CTR_BIN, "--address", socket, ...args], { env: baseEnv({ HOME: dir }), timeoutMs });
  let daemon: Daemon;
  try {
    daemon = await startDaemon({
      name: "containerd",
      argv: [CONTAINERD_BIN, "--config", join(dir, "config.toml")],
      dir,
      env: baseEnv({ HOME: dir }),
      ready: async () => existsSync(socket) && (await ctr(["version"], 5000)).code === 0,
    });
  } catch (error) {
    await removeDir(dir);
    throw error;
  }
  return {
    dir,
    root,
    hostsDir,
    daemon,
    ctr,
    async ctrOk(args, timeoutMs) {
      const result = await ctr(args, timeoutMs);
      if (result.code !== 0) throw new Error(`ctr ${args.join(" ")} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}`);
      return result.stdout;
    },
    blobFile: (digest) => join(root, "io.containerd.content.v1.content", "blobs", ...digest.split(":")),
    async stop() {
      await daemon.stop(15_000);
      await removeDir(dir); // overlayfs snapshots may still be mounted if containerd was killed
    },
  };
}

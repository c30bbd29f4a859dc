/**
 * podman and buildah (containers/image 5.23, Debian) with private storage and configuration
 * (protocol.md §4.4, §5). No daemon: every call gets `--root/--runroot/--storage-driver vfs` in a
 * temp dir, and the environment points every config file to that dir:
 *
 * - CONTAINERS_REGISTRIES_CONF: docker.io → registry-1.docker.io with docxy as an insecure
 *   mirror. docker.io itself cannot be reached from here, so a pull of docker.io/... that succeeds
 *   came through the mirror. (skopeo 1.9.3 ignores this variable; podman and buildah honour it.)
 * - CONTAINERS_CONF: an empty containers.conf, so a system one cannot change the engine set-up.
 * - REGISTRY_AUTH_FILE: a private auth.json, so no one's logins are used or written.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { baseEnv, removeDir, run, tempDir, type RunResult } from "./process";

export const PODMAN_BIN = "/usr/bin/podman";
export const BUILDAH_BIN = "/usr/bin/buildah";

export interface ContainersTools {
  dir: string;
  podman(args: string[]): Promise<RunResult>;
  /** argv and environment of a podman call, for one that stays up (startDaemon) instead of running to completion */
  podmanCommand(args: string[]): { argv: string[]; env: Record<string, string> };
  buildah(args: string[]): Promise<RunResult>;
  cleanup(): Promise<void>;
}

export function podmanUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "the suite runs podman and buildah rootful (no subuid set-up needed)";
  for (const [bin, pkg] of [
    [PODMAN_BIN, "podman"],
    [BUILDAH_BIN, "buildah"],
  ] as const) {
    if (!existsSync(bin)) return `${bin} is missing: apt-get install -y ${pkg}`;
  }
  return undefined;
}

export function containersTools(settings: { mirrorHost: string }): ContainersTools {
  const dir = tempDir("containers");
  const registriesConf = join(dir, "registries.conf");
  writeFileSync(
    registriesConf,
    `unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"

[[registry.mirror]]
location = "${settings.mirrorHost}"
insecure = true
`,
  );
  writeFileSync(join(dir, "containers.conf"), "");
  writeFileSync(join(dir, "auth.json"), "{}");
  mkdirSync(join(dir, "tmp"));

  const env = baseEnv({
    HOME: dir,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    CONTAINERS_CONF: join(dir, "containers.conf"),
    REGISTRY_AUTH_FILE: join(dir, "auth.json"),
    TMPDIR: join(dir, "tmp"),
  });
  const storage = ["--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs"];
  // cgroupfs and no event log: nothing of systemd or journald is needed.
  const podmanArgv = (args: string[]) => [PODMAN_BIN, ...storage, "--tmpdir", join(dir, "libpod"), "--cgroup-manager", "cgroupfs", "--events-backend", "none", ...args];
  return {
    dir,
    podman: (args) => run(podmanArgv(args), { env }),
    podmanCommand: (args) => ({ argv: podmanArgv(args), env }),
    buildah: (args) => run([BUILDAH_BIN, ...storage, ...args], { env }),
    cleanup: () => removeDir(dir),
  };
}

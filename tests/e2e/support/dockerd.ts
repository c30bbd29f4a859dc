/**
 * A private Docker daemon (Debian docker.io 20.10, classic image store) for pulls only
 * (protocol.md §5): vfs storage, no iptables and no bridge, its own data-root, exec-root, socket,
 * pidfile and daemon.json, all in a temp dir. The CLI gets DOCKER_HOST and a private
 * DOCKER_CONFIG, so no one's ~/.docker is read or written.
 *
 * dockerd 20.10 starts its own containerd child under exec-root. A SIGTERM makes dockerd stop it;
 * it is also started with a parent-death SIGKILL (seen here: it dies with a SIGKILLed dockerd), and
 * stop() kills it by the pid in exec-root as a last resort.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, baseEnv, removeDir, run, startDaemon, tempDir, type Daemon, type RunResult } from "./process";

/** The Debian binaries; a `docker` earlier in PATH (e.g. /usr/local/bin) may be another CLI entirely. */
export const DOCKERD_BIN = "/usr/sbin/dockerd";
export const DOCKER_BIN = "/usr/bin/docker";

export interface DockerOptions {
  /** DOCKER_CONFIG for this call instead of the daemon's default private one */
  configDir?: string;
  stdin?: string;
  timeoutMs?: number;
}

export interface Dockerd {
  dir: string;
  /** the CLI's private DOCKER_CONFIG (config.json lands here after `docker login`) */
  configDir: string;
  daemon: Daemon;
  docker(args: string[], options?: DockerOptions): Promise<RunResult>;
  /** docker(), failing with the CLI's own output on a non-zero exit */
  dockerOk(args: string[], options?: DockerOptions): Promise<string>;
  stop(): Promise<void>;
}

/** Why dockerd cannot run here, or undefined when it can. */
export function dockerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "dockerd needs root (it mounts and manages namespaces)";
  for (const bin of [DOCKERD_BIN, DOCKER_BIN, "/usr/bin/containerd", "/usr/bin/runc"]) {
    if (!existsSync(bin)) return `${bin} is missing: apt-get install -y docker.io`;
  }
  return undefined;
}

export async function startDockerd(settings: { mirrors: string[] }): Promise<Dockerd> {
  const dir = tempDir("dockerd");
  const socket = join(dir, "docker.sock");
  const execRoot = join(dir, "exec");
  const configDir = join(dir, "cli");
  mkdirSync(configDir);
  const daemonJson = {
    "registry-mirrors": settings.mirrors,
    // 20.10 writes its libtrust key to /etc/docker/key.json unless told otherwise (config-file only key).
    "deprecated-key-path": join(dir, "key.json"),
  };
  writeFileSync(join(dir, "daemon.json"), JSON.stringify(daemonJson, null, 2));

  const argv = [
    DOCKERD_BIN,
    `--config-file=${join(dir, "daemon.json")}`,
    "--storage-driver=vfs",
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    `--data-root=${join(dir, "data")}`,
    `--exec-root=${execRoot}`,
    `--host=unix://${socket}`,
    `--pidfile=${join(dir, "docker.pid")}`,
  ];
  let daemon: Daemon;
  try {
    daemon = await startDaemon({
      name: "dockerd",
      argv,
      dir,
      env: baseEnv({ HOME: dir }),
      ready: async () => {
        if (!existsSync(socket)) return false;
        const response = await fetch("http://docker/_ping", { unix: socket, signal: AbortSignal.timeout(2000) });
        return response.status === 200 && (await response.text()) === "OK";
      },
    });
  } catch (error) {
    await killInnerContainerd(execRoot, dir);
    await removeDir(dir);
    throw error;
  }

  const docker = (args: string[], options: DockerOptions = {}) =>
    run([DOCKER_BIN, ...args], {
      env: baseEnv({ HOME: dir, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: options.configDir ?? configDir }),
      stdin: options.stdin,
      timeoutMs: options.timeoutMs ?? 120_000,
    });
  return {
    dir,
    configDir,
    daemon,
    docker,
    async dockerOk(args, options) {
      const result = await docker(args, options);
      if (result.code !== 0) throw new Error(`docker ${args.join(" ")} failed (exit ${result.code}):\n${result.stderr}\n${result.stdout}`);
      return result.stdout;
    },
    async stop() {
      await daemon.stop(30_000); // dockerd waits up to 15 s for its containerd
      await killInnerContainerd(execRoot, dir);
      await removeDir(dir);
    },
  };
}

/** The containerd that dockerd started, if it somehow outlived dockerd. */
async function killInnerContainerd(execRoot: string, dir: string): Promise<void> {
  const pidFile = join(execRoot, "containerd", "containerd.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  if (alive(pid, dir)) process.kill(pid, "SIGTERM");
  for (let i = 0; i < 50 && alive(pid, dir); i++) await Bun.sleep(100);
  if (alive(pid, dir)) process.kill(pid, "SIGKILL");
}

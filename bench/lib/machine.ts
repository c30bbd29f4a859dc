/**
 * The tools the benchmark drives, installed from Debian when missing, and the
 * description of the machine that goes at the top of BENCHMARKS.md.
 */
import { $ } from "bun";
import { statSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { DOCXY_BIN } from "../../tests/support/docxy-process";
import { REDIS_BIN } from "../../tests/support/redis";
import { REGISTRY_BIN } from "../../tests/support/registry";

/** command → Debian package. nginx and wrk are the benchmark's own; the rest the tests also use. */
const TOOLS: [command: string, pkg: string][] = [
  ["curl", "curl"],
  ["nginx", "nginx"],
  ["wrk", "wrk"],
  ["skopeo", "skopeo"],
  ["docker-registry", "docker-registry"],
  ["redis-server", "redis-server"],
  // OpenStack Swift with s3api: the fleet scenario's bucket (tests/support/swift.ts)
  ["swift-proxy-server", "swift-proxy"],
  ["swift-account-server", "swift-account"],
  ["swift-container-server", "swift-container"],
  ["swift-object-server", "swift-object"],
  ["memcached", "memcached"],
];

// Bun.which, not `command -v`: Bun's shell has no `command` builtin.
const has = async (command: string) => Bun.which(command, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` }) !== null;

/** `apt-get install -y` whatever is missing (we run as root on these machines). */
export async function ensureTools(): Promise<void> {
  const missing: string[] = [];
  for (const [command, pkg] of TOOLS) if (!(await has(command))) missing.push(pkg);
  if (missing.length === 0) return;
  console.log(`installing ${missing.join(" ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  // Another apt may hold the lock for a while (other sessions install their tools too).
  const lock = "DPkg::Lock::Timeout=600";
  await $`apt-get -o ${lock} update -qq`.env(env);
  await $`apt-get -o ${lock} install -y -qq ${missing}`.env(env);
  for (const [command] of TOOLS) if (!(await has(command))) throw new Error(`${command} still missing after apt-get install`);
}

async function firstLine(cmd: string[]): Promise<string> {
  const out = await $`${cmd} 2>&1`.quiet().nothrow().text();
  return out.split("\n").find((l) => l.trim() !== "")?.trim() ?? "?";
}

export interface MachineInfo {
  cpu: string;
  nproc: number;
  memory: string;
  kernel: string;
  os: string;
  bun: string;
  docxy: string;
  commit: string;
  tools: Record<string, string>;
}

/** Which source the binary under test was built from, as far as can be told: its build time against the last commit to src/. */
async function binaryProvenance(): Promise<string> {
  const built = statSync(DOCXY_BIN).mtime;
  const commit = (await $`git rev-parse --short HEAD`.quiet().nothrow().text()).trim() || "?";
  const lastSrc = Number((await $`git log -1 --format=%ct -- src package.json scripts/build.ts`.quiet().nothrow().text()).trim()) * 1000;
  const dirty = (await $`git status --porcelain -- src`.quiet().nothrow().text()).trim() !== "";
  const when = `${built.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  if (dirty) return `dist/docxy built ${when}; HEAD ${commit} with uncommitted changes in src/`;
  if (lastSrc > built.getTime()) return `dist/docxy built ${when}, **older than the last commit to src/** (HEAD ${commit}; rerun with --build)`;
  return `dist/docxy built ${when} from HEAD ${commit} or an equivalent src/`;
}

export async function describeMachine(): Promise<MachineInfo> {
  const osRelease = await Bun.file("/etc/os-release").text().catch(() => "");
  return {
    cpu: cpus()[0]?.model ?? "?",
    nproc: Number((await $`nproc`.text()).trim()),
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: (await $`uname -r`.text()).trim(),
    os: /PRETTY_NAME="([^"]+)"/.exec(osRelease)?.[1] ?? "?",
    bun: Bun.version,
    docxy: await firstLine([DOCXY_BIN, "--version"]),
    commit: await binaryProvenance(),
    tools: {
      nginx: await firstLine(["nginx", "-v"]),
      "docker-registry": await firstLine([REGISTRY_BIN, "--version"]),
      wrk: (await firstLine(["wrk", "-v"])).replace(/\s*Copyright.*$/, ""),
      curl: (await firstLine(["curl", "--version"])).split(" (")[0]!,
      skopeo: await firstLine(["skopeo", "--version"]),
      "redis-server": await firstLine([REDIS_BIN, "--version"]),
      swift: `swift-proxy ${await firstLine(["dpkg-query", "-W", "-f=${Version}", "swift-proxy"])}`,
    },
  };
}

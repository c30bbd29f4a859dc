/**
 * CNCF distribution 2.8 (Debian's docker-registry) in proxy mode
 * (`proxy.remoteurl`) in front of the benchmark's upstream: the usual
 * self-hosted pull-through cache. tests/support/registry.ts has no proxy
 * option, so the config is built here; its watchdog and binary are reused.
 * Each instance has its own empty storage, so a new one is a cold cache.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "../../tests/support/cleanup";
import { freePort } from "../../tests/support/ports";
import { REGISTRY_BIN, WATCHDOG } from "../../tests/support/registry";

export interface DistributionProxy {
  url: string;
  pid: number;
  rootDir: string;
  stop(): Promise<void>;
}

export function proxyConfig(port: number, rootDir: string, remoteUrl: string): object {
  // JSON is valid YAML.
  return {
    version: "0.1",
    // distribution's defaults (info, access log on), as docxy runs with its defaults
    log: { level: "info", formatter: "text", accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: rootDir },
      maintenance: { uploadpurging: { enabled: false } },
      delete: { enabled: true }, // the proxy's TTL scheduler removes expired content
      cache: { blobdescriptor: "inmemory" },
    },
    http: { addr: `127.0.0.1:${port}`, secret: "docxy-bench-secret" },
    proxy: { remoteurl: remoteUrl },
  };
}

export async function startDistributionProxy(remoteUrl: string): Promise<DistributionProxy> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-bench-distribution-"));
  removeAtExit(dir);
  const rootDir = join(dir, "root");
  const logFile = join(dir, "registry.log");
  const configFile = join(dir, "config.yml");
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    await Bun.write(configFile, JSON.stringify(proxyConfig(port, rootDir, remoteUrl), null, 2));
    const fd = openSync(logFile, "a");
    let proc: Subprocess<"pipe", number, number>;
    try {
      proc = Bun.spawn(["sh", "-c", WATCHDOG, "sh", REGISTRY_BIN, "serve", configFile], { stdin: "pipe", stdout: fd, stderr: fd });
    } finally {
      closeSync(fd);
    }
    const url = `http://127.0.0.1:${port}`;
    const stop = async () => {
      await proc.stdin.end();
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await proc.exited;
      clearTimeout(timer);
    };
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (Date.now() < deadline && proc.exitCode === null) {
      const status = await fetch(`${url}/v2/`).then(
        async (r) => (await r.arrayBuffer(), r.status),
        () => 0,
      );
      if (status === 200) {
        ready = true;
        break;
      }
      await Bun.sleep(25);
    }
    if (ready) {
      return {
        url,
        pid: proc.pid,
        rootDir,
        async stop() {
          await stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await stop();
    const log = readFileSync(logFile, "utf8");
    if (!/address already in use/.test(log) || attempt >= 5) throw new Error(`distribution proxy did not start:\n${log.slice(-2000)}`);
  }
}

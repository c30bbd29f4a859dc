// Runs Pebble, Let's Encrypt's ACME test CA (Debian package `pebble`, 2.4.0 on bookworm), as a
// child process on loopback. Validation is real: PEBBLE_VA_ALWAYS_VALID is never set, so each
// HTTP-01 challenge is fetched from `http://<name>:<httpPort>/.well-known/acme-challenge/<token>`.
// Debian ships no test certificate for Pebble's own HTTPS, so one is made with openssl.
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { selfSignedCert } from "./certs";
import { freePort } from "./ports";
import { WATCHDOG } from "./registry";

export const PEBBLE_BIN = process.env.DOCXY_PEBBLE_BIN ?? "/usr/bin/pebble";

export interface PebbleOptions {
  workDir: string;
  /** where Pebble's VA sends HTTP-01 requests: the test's challenge server */
  httpPort: number;
  /** lifetime of issued certificates in seconds (Pebble's `certificateValidityPeriod`) */
  validitySeconds?: number;
}

export interface Pebble {
  directoryUrl: string;
  /** PEM file that Pebble's own HTTPS (directory and management) chains to: for `ca` options */
  tlsCaPath: string;
  /** the root that issued certificates chain to (regenerated at every Pebble start) */
  root(): Promise<string>;
  intermediate(): Promise<string>;
  logFile: string;
  stop(): Promise<void>;
}

type PebbleChild = Subprocess<"pipe", number, number>;

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  if (!existsSync(PEBBLE_BIN)) throw new Error(`${PEBBLE_BIN} is missing: apt-get install -y pebble`);
  const tlsCert = await selfSignedCert("ec", "127.0.0.1");
  const configFile = join(opts.workDir, "pebble.json");
  const logFile = join(opts.workDir, "pebble.log");
  for (let attempt = 1; ; attempt++) {
    const [port, managementPort] = [await freePort(), await freePort()];
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: tlsCert.cert,
        privateKey: tlsCert.key,
        httpPort: opts.httpPort,
        tlsPort: 1, // TLS-ALPN-01 is not used; a port nothing listens on
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    };
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const { PEBBLE_VA_ALWAYS_VALID: _never, ...env } = process.env;
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const fd = openSync(logFile, "a");
    let proc: PebbleChild;
    try {
      proc = Bun.spawn(["sh", "-c", WATCHDOG, "sh", PEBBLE_BIN, "-config", configFile], {
        stdin: "pipe",
        stdout: fd,
        stderr: fd,
        env: {
          ...env,
          PEBBLE_VA_NOSLEEP: "1", // no random 0–15 s wait before each validation
          PEBBLE_AUTHZREUSE: "0", // every order validates again, renewals included
        },
      });
    } finally {
      closeSync(fd);
    }
    const stop = () => stopProcess(proc);
    const base = `https://127.0.0.1:${port}`;
    const management = `https://127.0.0.1:${managementPort}`;
    const ca = readFileSync(tlsCert.cert, "utf8");
    const get = async (url: string) => {
      const response = await fetch(url, { tls: { ca }, signal: AbortSignal.timeout(2000) } as RequestInit);
      if (!response.ok) throw new Error(`${url}: ${response.status}`);
      return response.text();
    };
    if (await ready(() => get(`${base}/dir`), proc, 15_000)) {
      return {
        directoryUrl: `${base}/dir`,
        tlsCaPath: tlsCert.cert,
        root: () => get(`${management}/roots/0`),
        intermediate: () => get(`${management}/intermediates/0`),
        logFile,
        stop,
      };
    }
    await stop();
    const log = readFileSync(logFile).subarray(logStart).toString("utf8");
    if (!/address already in use/.test(log) || attempt >= 5) throw new Error(`pebble exited early; log ${logFile}:\n${log.slice(-2000)}`);
  }
}

async function ready(probe: () => Promise<unknown>, proc: PebbleChild, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    try {
      await probe();
      return true;
    } catch {
      await Bun.sleep(50); // not listening yet
    }
  }
  await stopProcess(proc);
  throw new Error(`pebble not ready after ${timeoutMs} ms`);
}

async function stopProcess(proc: PebbleChild): Promise<void> {
  try {
    await proc.stdin.end(); // the watchdog sees EOF and sends SIGTERM (or just exits, if Pebble already has)
  } catch {
    // already ended by an earlier stop()
  }
  const timedOut = await Promise.race([proc.exited.then(() => false), Bun.sleep(3000).then(() => true)]);
  if (timedOut) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

// Real forward proxies for the outbound-proxy tests, from Debian: tinyproxy (HTTP: absolute-form
// forwarding and CONNECT, optional BasicAuth) and dante-server's danted (SOCKS5, optional
// username/password). Each listens on 127.0.0.1 on a free port and connects out FROM 127.0.0.2
// (tinyproxy `Bind`, dante `external`), so the test upstream sees, in each request's peer address,
// whether it came through the proxy (127.0.0.2) or straight from docxy (127.0.0.1).
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeAtExit } from "./cleanup";
import { freePort } from "./ports";
import { WATCHDOG } from "./registry";

/** The address the proxies connect out from. */
export const PROXY_EGRESS = "127.0.0.2";

export interface ProxyServer {
  /** e.g. http://user:pass@127.0.0.1:PORT, or socks5://… (credentials included when it has some) */
  url: string;
  port: number;
  /** The requests (tinyproxy: `METHOD target`) or tunnels (dante: `host:port` reached) it has logged so far. */
  requests(): string[];
  stop(): Promise<void>;
}

export interface ProxyAuth {
  user: string;
  password: string;
}

/** tinyproxy with `BasicAuth` when `auth` is given. */
export async function startTinyproxy(auth?: ProxyAuth): Promise<ProxyServer> {
  const dir = workDir("tinyproxy");
  const port = await freePort();
  const log = join(dir, "tinyproxy.log");
  const config = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    `Bind ${PROXY_EGRESS}`,
    "User nobody",
    "Group nogroup",
    "Timeout 60",
    "LogLevel Info",
    `LogFile "${log}"`,
    "MaxClients 64",
    "Allow 127.0.0.1",
    // No ConnectPort line: CONNECT to any port (the test upstreams are not on 443).
    ...(auth ? [`BasicAuth ${auth.user} ${auth.password}`] : []),
  ].join("\n");
  const conf = join(dir, "tinyproxy.conf");
  await Bun.write(conf, `${config}\n`);
  const stop = await spawn(["tinyproxy", "-d", "-c", conf], port, dir, log);
  return {
    url: `http://${auth ? `${auth.user}:${auth.password}@` : ""}127.0.0.1:${port}`,
    port,
    requests: () =>
      lines(log).flatMap((line) => {
        const m = /Request \(file descriptor \d+\): (\S+) (\S+)/.exec(line);
        return m ? [`${m[1]} ${m[2]}`] : [];
      }),
    stop,
  };
}

/**
 * A system account for dante's username method, which checks the system's password database
 * (there is no password file of its own). Created once, with no home and no login shell.
 */
export const SOCKS_ACCOUNT: ProxyAuth = { user: "docxy-socks-test", password: "socks-test-secret-7Qx" };

async function ensureSocksAccount(): Promise<void> {
  const exists = await Bun.spawn(["id", SOCKS_ACCOUNT.user], { stdout: "ignore", stderr: "ignore" }).exited;
  if (exists !== 0) {
    const created = await Bun.spawn(["useradd", "-M", "-s", "/usr/sbin/nologin", SOCKS_ACCOUNT.user], { stderr: "inherit" }).exited;
    if (created !== 0) throw new Error(`useradd ${SOCKS_ACCOUNT.user} failed`);
  }
  const chpasswd = Bun.spawn(["chpasswd"], { stdin: "pipe", stderr: "inherit" });
  chpasswd.stdin.write(`${SOCKS_ACCOUNT.user}:${SOCKS_ACCOUNT.password}\n`);
  await chpasswd.stdin.end();
  if ((await chpasswd.exited) !== 0) throw new Error("chpasswd failed");
}

/** danted; with `withAuth` it demands SOCKS_ACCOUNT (username method), else no authentication. */
export async function startDante(withAuth = false): Promise<ProxyServer> {
  if (withAuth) await ensureSocksAccount();
  const dir = workDir("danted");
  const port = await freePort();
  const log = join(dir, "danted.log");
  const config = [
    `logoutput: ${log}`,
    `internal: 127.0.0.1 port = ${port}`,
    `external: ${PROXY_EGRESS}`,
    "clientmethod: none",
    `socksmethod: ${withAuth ? "username" : "none"}`,
    "user.privileged: root",
    "user.unprivileged: nobody",
    "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}",
    "socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: connect error\n}",
  ].join("\n");
  const conf = join(dir, "danted.conf");
  await Bun.write(conf, `${config}\n`);
  const stop = await spawn(["danted", "-f", conf], port, dir, log);
  const auth = withAuth ? `${SOCKS_ACCOUNT.user}:${SOCKS_ACCOUNT.password}@` : "";
  return {
    url: `socks5://${auth}127.0.0.1:${port}`,
    port,
    // "pass(1): tcp/connect [: 127.0.0.1.41000 127.0.0.1.1080 -> 127.0.0.2.39000 127.0.0.1.5000" (the last is the target)
    requests: () =>
      lines(log).flatMap((line) => {
        const m = /tcp\/connect \[: .* -> \S+ (\S+)\.(\d+)\s*$/.exec(line);
        return m ? [`${m[1]}:${m[2]}`] : [];
      }),
    stop,
  };
}

function workDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `docxy-${name}-`));
  removeAtExit(dir);
  chmodSync(dir, 0o777); // both drop to nobody, which writes the log
  return dir;
}

function lines(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n");
  } catch {
    return [];
  }
}

/** Starts `argv` under the registry's watchdog (it dies with the test process) and waits for its port. */
async function spawn(argv: string[], port: number, dir: string, log: string): Promise<() => Promise<void>> {
  const child = Bun.spawn(["sh", "-c", WATCHDOG, "sh", ...argv], { stdin: "pipe", stdout: "ignore", stderr: "pipe", cwd: dir });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // danted's per-session children outlive their parent's SIGTERM and would keep established
    // tunnels up: a stopped proxy must drop them, as a proxy that goes away does.
    const children = descendants(child.pid);
    await child.stdin.end(); // the watchdog sends SIGTERM
    const timedOut = await Promise.race([child.exited.then(() => false), Bun.sleep(3000).then(() => true)]);
    if (timedOut) child.kill("SIGKILL");
    await child.exited;
    for (const pid of children) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const output = `${await new Response(child.stderr).text()}\n${lines(log).join("\n")}`;
      await stop();
      throw new Error(`${argv[0]} did not start on port ${port}:\n${output.slice(-2000)}`);
    }
    await Bun.sleep(50);
  }
  return stop;
}

/** The processes below `pid`, from /proc (each by its id; nothing else is touched). */
function descendants(pid: number): number[] {
  let direct: number[] = [];
  try {
    direct = readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
  return direct.flatMap((p) => [p, ...descendants(p)]);
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

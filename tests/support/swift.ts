// Runs OpenStack Swift with its s3api middleware (Debian `swift` 2.30) on loopback: the real
// S3-compatible store of the fleet tests (issue 16; how and why: shared/research/fleet.md §1).
// Four Swift processes plus memcached, configured in a temp dir, nothing under /etc, no systemd.
// One Swift takes seconds to start: share one per test file (beforeAll/afterAll).
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { removeAtExit } from "./cleanup";
import { freePort } from "./ports";
import { killChild } from "./redis";
import { WATCHDOG } from "./registry";

export const SWIFT_PROXY_BIN = "/usr/bin/swift-proxy-server";
const PYTHON = "/usr/bin/python3"; // Debian's, the one python3-swift is installed for (not a pyenv on PATH)
const SERVERS = ["account", "container", "object"] as const;

/** One request as Swift's proxy-logging saw it from a client (S3 path, not Swift's translation). */
export interface SwiftRequest {
  method: string;
  path: string;
  status: number;
}

export interface Swift {
  /** S3 endpoint (path-style), e.g. http://127.0.0.1:PORT */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Bun's default region `auto` is refused by s3api (AuthorizationHeaderMalformed): always pass this one. */
  region: string;
  /** Creates a bucket (a Swift container): Bun's S3 client has no CreateBucket. */
  createBucket(name: string): Promise<void>;
  /**
   * Client requests the proxy answered since the start (or since `clearRequests`), oldest first.
   * Waits for the log lines of every request answered before the call (see `requests` below).
   */
  requests(): Promise<SwiftRequest[]>;
  clearRequests(): void;
  /** SIGKILLs the proxy: S3 requests then fail to connect, as when an object store goes down. */
  killProxy(): Promise<void>;
  /** Starts the proxy again on the same port; resolves once it answers. */
  restartProxy(): Promise<void>;
  /** Stops every process and removes the data; safe to call twice. */
  stop(): Promise<void>;
}

type Child = Subprocess<"pipe", number, number>;

/**
 * Swift's five processes on fresh ports. One failed start is tried again on other ports: a port
 * freePort found free can be taken (by an outgoing connection's ephemeral port) before the
 * server binds it, and a loaded CI machine once left a storage server silent for 30 s.
 */
export async function startSwift(): Promise<Swift> {
  try {
    return await startSwiftOnce();
  } catch (error) {
    console.warn(`Swift did not start, trying once more: ${(error as Error).message}`);
    return startSwiftOnce();
  }
}

async function startSwiftOnce(): Promise<Swift> {
  const dir = mkdtempSync(join(tmpdir(), "docxy-swift-"));
  removeAtExit(dir);
  const children: Child[] = [];
  const log = new AccessLog();
  try {
    const ports = { proxy: 0, account: 0, container: 0, object: 0, memcached: 0 };
    for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort();
    mkdirSync(join(dir, "devices", "d1"), { recursive: true });
    writeConfigs(dir, ports, await log.listen());
    await buildRings(dir, ports);

    const spawn = (name: string, argv: string[]): Child => {
      const child = spawnLogged(dir, name, argv);
      children.push(child);
      return child;
    };
    spawn("memcached", ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", String(ports.memcached), "-U", "0", "-u", "nobody"]);
    for (const server of SERVERS) spawn(server, [`/usr/bin/swift-${server}-server`, join(dir, `${server}-server.conf`)]);
    // A proxy that finds a storage server down error-limits it and answers 503 for about a minute
    // (fleet.md §1), so it starts only once all three answer HTTP.
    await Promise.all(SERVERS.map((server) => waitForHttp(`http://127.0.0.1:${ports[server]}/`, dir, server)));
    const startProxy = async () => {
      const proxy = spawn("proxy", [SWIFT_PROXY_BIN, join(dir, "proxy-server.conf")]);
      await waitForHttp(`http://127.0.0.1:${ports.proxy}/healthcheck`, dir, "proxy", proxy);
      return proxy;
    };
    let proxy: Child | undefined = await startProxy();
    const endpoint = `http://127.0.0.1:${ports.proxy}`;

    let stopped = false;
    return {
      endpoint,
      accessKeyId: "test:tester",
      secretAccessKey: "testing",
      region: "us-east-1",
      createBucket: (name) => createBucket(endpoint, name),
      requests: () => log.flush(endpoint),
      clearRequests: () => log.clear(),
      async killProxy() {
        if (proxy) await killChild(proxy);
        proxy = undefined;
      },
      async restartProxy() {
        if (proxy) throw new Error("the Swift proxy is still running");
        proxy = await startProxy();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await Promise.all(children.map(stopChild));
        log.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(children.map(stopChild));
    log.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function writeConfigs(dir: string, ports: Record<string, number>, logPort: number): void {
  writeFileSync(join(dir, "swift.conf"), ["[swift-hash]", "swift_hash_path_suffix = docxy-test", "[storage-policy:0]", "name = gold", "default = yes"].join("\n"));
  // No /dev/log in a container: without a UDP target Swift's syslog handler would go to localhost:514.
  const common = (port: number) =>
    ["[DEFAULT]", `swift_dir = ${dir}`, "bind_ip = 127.0.0.1", `bind_port = ${port}`, "workers = 0", "log_udp_host = 127.0.0.1", `log_udp_port = ${logPort}`];
  for (const server of SERVERS) {
    const lines = [...common(ports[server] ?? 0), `devices = ${join(dir, "devices")}`, "mount_check = false"];
    lines.push("[pipeline:main]", `pipeline = ${server}-server`, `[app:${server}-server]`, `use = egg:swift#${server}`);
    writeFileSync(join(dir, `${server}-server.conf`), lines.join("\n"));
  }
  const filters = ["catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "listing_formats", "bulk", "copy", "slo", "dlo"];
  const proxy = [
    ...common(ports.proxy ?? 0),
    "[pipeline:main]",
    // The pipeline fleet.md §1 verified; two proxy-logging: the left one logs what clients sent.
    "pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server",
    "[app:proxy-server]",
    "use = egg:swift#proxy",
    "account_autocreate = true",
    ...filters.flatMap((name) => [`[filter:${name}]`, `use = egg:swift#${name.replace("-", "_")}`]),
    "[filter:cache]",
    "use = egg:swift#memcache",
    `memcache_servers = 127.0.0.1:${ports.memcached}`,
    "[filter:s3api]",
    "use = egg:swift#s3api",
    "location = us-east-1",
    "[filter:tempauth]",
    "use = egg:swift#tempauth",
    "user_test_tester = testing .admin",
  ];
  writeFileSync(join(dir, "proxy-server.conf"), proxy.join("\n"));
}

/** The three rings in one Python process (swift-ring-builder nine times would cost seconds of interpreter starts). */
async function buildRings(dir: string, ports: Record<string, number>): Promise<void> {
  const script = `
import sys
from swift.common.ring import RingBuilder
for name, port in zip(("account", "container", "object"), sys.argv[2:]):
    builder = RingBuilder(4, 1, 1)  # part power 4, 1 replica, min_part_hours 1
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1", "weight": 1})
    builder.rebalance()
    builder.save(f"{sys.argv[1]}/{name}.builder")
    builder.get_ring().save(f"{sys.argv[1]}/{name}.ring.gz")
`;
  const proc = Bun.spawn([PYTHON, "-c", script, dir, ...SERVERS.map((s) => String(ports[s]))], { stdout: "pipe", stderr: "pipe" });
  if ((await proc.exited) !== 0) throw new Error(`building Swift rings failed: ${await new Response(proc.stderr).text()}`);
}

/**
 * Each child under the watchdog (registry.ts): it SIGTERMs the child when our end of its stdin
 * pipe closes, which the kernel does when this process dies in any way, so no Swift outlives a
 * crashed test run.
 */
function spawnLogged(dir: string, name: string, argv: string[]): Child {
  const fd = openSync(join(dir, `${name}.log`), "a");
  try {
    return Bun.spawn(["sh", "-c", WATCHDOG, "sh", ...argv], { stdin: "pipe", stdout: fd, stderr: fd });
  } finally {
    closeSync(fd);
  }
}

async function stopChild(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    await child.stdin.end();
  } catch {
    // already ended
  }
  const timedOut = await Promise.race([child.exited.then(() => false), Bun.sleep(3000).then(() => true)]);
  if (timedOut) {
    child.kill("SIGKILL");
    await child.exited;
  }
}

async function waitForHttp(url: string, dir: string, name: string, child?: Child): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) break;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  const log = readFileSync(join(dir, `${name}.log`), "utf8").slice(-2000);
  throw new Error(`Swift ${name} did not answer at ${url}; its log:\n${log}`);
}

async function createBucket(endpoint: string, name: string): Promise<void> {
  const auth = await fetch(`${endpoint}/auth/v1.0`, { headers: { "X-Auth-User": "test:tester", "X-Auth-Key": "testing" } });
  const token = auth.headers.get("x-auth-token");
  const storage = auth.headers.get("x-storage-url");
  if (!auth.ok || !token || !storage) throw new Error(`Swift tempauth answered ${auth.status}`);
  const created = await fetch(`${storage}/${encodeURIComponent(name)}`, { method: "PUT", headers: { "X-Auth-Token": token } });
  if (created.status !== 201 && created.status !== 202) throw new Error(`creating bucket ${name} answered ${created.status}`);
}

/**
 * The proxy's access log, received as syslog over UDP. proxy-logging writes a line after the
 * response, so a line can arrive after the client already has its answer: `flush` sends a marker
 * request and waits for its line; the proxy runs one process (workers = 0), so the lines of the
 * requests answered before the marker were written before the marker's.
 */
class AccessLog {
  private entries: SwiftRequest[] = [];
  private socket: Bun.udp.Socket<"buffer"> | undefined;
  private waiting = new Map<string, () => void>();
  private markers = 0;

  async listen(): Promise<number> {
    const socket = await Bun.udpSocket({
      hostname: "127.0.0.1",
      socket: { data: (_socket, data) => this.receive(data.toString("utf8")) },
    });
    this.socket = socket;
    return socket.port;
  }

  private receive(line: string): void {
    // "<PRI>proxy-server: " then proxy-logging's default format, space-separated URL-quoted fields:
    // client remote date method path protocol status referer agent token in out etag txn headers time source ...
    const fields = line.slice(line.indexOf("proxy-server: ") + "proxy-server: ".length).split(" ");
    if (!line.includes("proxy-server: ") || fields.length < 17) return; // other servers, non-access lines
    // A source names the middleware that made a subrequest (s3api's bucket checks): not a client's request.
    if (fields[16] !== "-") return;
    const [method = "", path = ""] = [fields[3], decodeURIComponent(fields[4] ?? "")];
    const marker = this.waiting.get(path);
    if (marker) return marker();
    this.entries.push({ method, path, status: Number(fields[6]) });
  }

  async flush(endpoint: string): Promise<SwiftRequest[]> {
    const path = `/docxy-log-marker-${++this.markers}`;
    const logged = new Promise<void>((resolve) => this.waiting.set(path, resolve));
    await (await fetch(`${endpoint}${path}`)).arrayBuffer(); // no credentials: refused, and logged
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("Swift's access log line for a marker request never arrived")), 5000);
    });
    await Promise.race([logged, timeout]).finally(() => {
      clearTimeout(timer);
      this.waiting.delete(path);
    });
    return [...this.entries];
  }

  clear(): void {
    this.entries = [];
  }

  close(): void {
    this.socket?.close();
  }
}

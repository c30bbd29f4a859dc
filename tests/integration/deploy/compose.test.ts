/**
 * deploy/compose.yaml and deploy/compose.fleet.yaml as `docker-compose config` resolves them
 * (Debian's docker-compose, which validates the file), checked against the binary: the published
 * port is the one docxy listens on with the mounted file, the healthcheck is the binary's own
 * `health` and passes against a running docxy, and each fleet node is a valid node whose
 * variables docxy reads.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { version } from "../../../package.json";
import { DOCXY_BIN, startDocxy } from "../../support/docxy-process";
import { freePort } from "../../support/ports";
import { BUDGET, checkConfig, expectEachVariableRead, IMAGE, ROOT, tempDir } from "./support";

interface Service {
  image: string;
  environment?: Record<string, string>;
  ports?: (string | { target: number; published: number | string })[];
  volumes?: (string | { type: string; source: string; target: string })[];
  healthcheck?: { test: string[] };
  read_only?: boolean;
}

function composeConfig(file: string, env: Record<string, string> = {}) {
  const result = Bun.spawnSync(["docker-compose", "-f", join(ROOT, "deploy", file), "config"], {
    env: { PATH: process.env.PATH ?? "", HOME: tempDir(), ...env },
    stderr: "pipe",
  });
  const services = result.exitCode === 0 ? (Bun.YAML.parse(result.stdout.toString()) as { services: Record<string, Service> }).services : {};
  return { code: result.exitCode, stderr: result.stderr.toString(), services };
}

/** Volumes in either of compose's spellings: "source:target[:mode]", or the long form. */
function mounts(service: Service) {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== "string") return { type: v.type, source: v.source, target: v.target };
    const [source = "", target = ""] = v.split(":");
    return { type: source.startsWith("/") || source.startsWith(".") ? "bind" : "volume", source, target };
  });
}

function ports(service: Service) {
  return (service.ports ?? []).map((p) => {
    if (typeof p !== "string") return { published: Number(p.published), target: p.target };
    const [published, target] = p.split(":").map(Number);
    return { published, target };
  });
}

/** The container's environment (the image's, then the file's), with DOCXY_CONFIG naming the mounted file on this machine. */
function serviceEnv(service: Service): Record<string, string> {
  const env: Record<string, string> = { ...IMAGE.env, ...service.environment };
  const config = mounts(service).find((m) => m.target === env.DOCXY_CONFIG);
  expect(config?.type).toBe("bind");
  return { ...env, DOCXY_CONFIG: config!.source };
}

const listening = (stdout: string) => Number(/listeners: http :(\d+)\n/.exec(stdout)?.[1]);

const single = composeConfig("compose.yaml");

test("compose.yaml: one node of this version, publishing the port docxy listens on with the mounted docxy.toml, its cache on a volume, a read-only root", async () => {
  expect({ code: single.code, services: Object.keys(single.services) }).toEqual({ code: 0, services: ["docxy"] });
  const docxy = single.services.docxy!;
  expect(docxy.image).toBe(`docxy:${version}`);
  expect(docxy.read_only).toBe(true);
  const result = await checkConfig(serviceEnv(docxy));
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" }); // a warning would be an unknown key
  expect(ports(docxy)).toEqual([{ published: 5000, target: listening(result.stdout) }]);
  // The only place docxy writes holds its cache.
  const volumes = mounts(docxy).filter((m) => m.type === "volume");
  expect(volumes.map((m) => m.target)).toEqual([IMAGE.state]);
  expect(/cache: (\S+), max/.exec(result.stdout)?.[1]).toStartWith(`${IMAGE.state}/`);
}, BUDGET);

test("compose.yaml's healthcheck is the image's binary asking its configured port: it passes against a running docxy and fails once it stops", async () => {
  const docxy = single.services.docxy!;
  const [kind, binary, ...args] = docxy.healthcheck!.test;
  expect([kind, binary]).toEqual(["CMD", IMAGE.binary]);
  const env = serviceEnv(docxy);
  const proxy = await startDocxy({ config: readFileSync(env.DOCXY_CONFIG!, "utf8"), env: { DOCXY_CACHE_DIR: join(tempDir(), "cache"), DOCXY_UPSTREAM_PING_TIMEOUT: "1" } });
  // The one change: the test's docxy is on a free port, not 5000; the check follows the configuration.
  const check = () => Bun.spawnSync([DOCXY_BIN, ...args], { env: { ...env, DOCXY_SERVER_HTTP_PORT: new URL(proxy.url).port }, stderr: "pipe" });
  try {
    const healthy = check();
    expect({ code: healthy.exitCode, stderr: healthy.stderr.toString() }).toEqual({ code: 0, stderr: "" });
  } finally {
    await proxy.stop();
  }
  expect(check().exitCode).toBe(1);
}, BUDGET);

const STORE = {
  DOCXY_CACHE_S3_BUCKET: "docxy",
  DOCXY_CACHE_S3_ACCESS_KEY_ID: "key-id",
  DOCXY_CACHE_S3_SECRET_ACCESS_KEY: "secret-key",
  DOCXY_FLEET_SECRET: "a-fleet-secret-of-at-least-32-characters",
};

test("compose.fleet.yaml: three valid nodes, each advertising its own service name on docxy's port, on one Redis of the file; docxy reads every variable", async () => {
  const s3Port = await freePort(); // nothing listens there: the bucket is unreachable, which a node survives
  const fleet = composeConfig("compose.fleet.yaml", { ...STORE, DOCXY_CACHE_S3_ENDPOINT: `http://127.0.0.1:${s3Port}` });
  expect(fleet.code).toBe(0);
  const nodes = Object.entries(fleet.services).filter(([, s]) => s.image === `docxy:${version}`);
  expect(nodes.map(([name]) => name).sort()).toEqual(["docxy-1", "docxy-2", "docxy-3"]);
  expect(new Set(nodes.flatMap(([, s]) => ports(s).map((p) => p.published))).size).toBe(3);
  expect(new Set(nodes.flatMap(([, s]) => mounts(s).filter((m) => m.type === "volume").map((m) => m.source))).size).toBe(3);

  for (const [name, node] of nodes) {
    expect(node.healthcheck!.test).toEqual(single.services.docxy!.healthcheck!.test);
    expect(node.read_only).toBe(true);
    const env = serviceEnv(node);
    expect(Object.keys(fleet.services)).toContain(new URL(env.DOCXY_FLEET_REDIS_URL!).hostname);
    const result = await checkConfig(env);
    expect({ name, code: result.code, warnings: result.stderr.includes("warning") }).toEqual({ name, code: 0, warnings: false });
    expect(result.stdout).toContain(`storage: s3 bucket docxy at http://127.0.0.1:${s3Port}`);
    const port = listening(result.stdout);
    expect(ports(node).map((p) => p.target)).toEqual([port]);
    expect(env.DOCXY_FLEET_ADVERTISE_URL).toBe(`http://${name}:${port}`);
  }
  const [, first] = nodes[0]!;
  await expectEachVariableRead(serviceEnv(first), Object.keys(first.environment ?? {}));
}, BUDGET);

test("compose.fleet.yaml refuses to start without each of the store's settings and the fleet secret, naming it; REDIS_IMAGE picks Redis's image", () => {
  const complete = { ...STORE, DOCXY_CACHE_S3_ENDPOINT: "http://s3.internal:9000" };
  for (const name of Object.keys(complete)) {
    const missing = composeConfig("compose.fleet.yaml", Object.fromEntries(Object.entries(complete).filter(([key]) => key !== name)));
    // docker-compose 1.29 prints the whole uninterpolated environment first, then the message of the `${NAME:?message}` that failed.
    const message = /in service "[^"]+": (.*)$/.exec(missing.stderr.trim())?.[1];
    expect({ name, accepted: missing.code === 0, message }).toEqual({ name, accepted: false, message: expect.stringContaining(`set ${name} to`) });
  }
  const ours = composeConfig("compose.fleet.yaml", { ...complete, REDIS_IMAGE: "registry.internal/library/redis:7" });
  expect(ours.services.redis?.image).toBe("registry.internal/library/redis:7");
}, BUDGET);

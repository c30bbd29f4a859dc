/**
 * deploy/kubernetes as `kubectl kustomize` renders it (what `kubectl apply -k` sends), checked
 * against the binary it runs: the port docxy listens on with the ConfigMap's file, the probe paths
 * answering on a running docxy, every environment variable read by docxy, the fleet's replicas and
 * disruption budget, and the node side's hosts.toml files against README, written by their own script.
 */
import { expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { version } from "../../../package.json";
import { loadConfig } from "../../../src/config/load";
import { startDocxy } from "../../support/docxy-process";
import { freePort } from "../../support/ports";
import { BUDGET, checkConfig, expectEachVariableRead, IMAGE, ROOT, tempDir } from "./support";

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet: { path: string; port: string };
  timeoutSeconds: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: EnvVar[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  securityContext?: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  securityContext?: Record<string, unknown>;
  initContainers?: Container[];
  containers: Container[];
  volumes: { name: string; configMap?: { name: string }; hostPath?: { path: string } }[];
  topologySpreadConstraints?: { labelSelector: { matchLabels: Record<string, string> } }[];
}
interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  // Each test reads the fields of its kind: typing every kind's spec would double this file.
  spec?: any;
}

/**
 * Why these tests cannot run here, if they cannot: rendering needs kubectl 1.21 or later (older
 * ones embed kustomize v2, which cannot read these files), and Debian 12's kubernetes-client is
 * 1.20, so the test command cannot install one. Without it they are skipped, saying so.
 */
function kubectlUnavailable(): string | undefined {
  const result = Bun.spawnSync(["kubectl", "version", "--client", "-o", "json"], { stderr: "pipe" });
  if (!result.success) return "kubectl is missing (1.21 or later is needed for kustomize v3+)";
  const minor = Number(String((JSON.parse(result.stdout.toString()) as { clientVersion?: { minor?: string } }).clientVersion?.minor ?? "0").replace(/\D.*$/, ""));
  return minor >= 21 ? undefined : `kubectl 1.${minor} embeds kustomize v2, which cannot read these files: 1.21 or later is needed`;
}
const unavailable = kubectlUnavailable();
if (unavailable) console.warn(`SKIPPED tests/integration/deploy/kubernetes.test.ts: ${unavailable}`);
const kubernetesTest = test.skipIf(unavailable !== undefined);

function kustomize(dir: string): K8sObject[] {
  const result = Bun.spawnSync(["kubectl", "kustomize", join(ROOT, dir)], { stderr: "pipe" });
  if (result.exitCode !== 0) {
    throw new Error(`kubectl kustomize ${dir}: ${result.stderr.toString()}(kubectl 1.21 or later: older ones embed kustomize v2)`);
  }
  return Bun.YAML.parse(result.stdout.toString()) as K8sObject[];
}

function one(objects: K8sObject[], kind: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind);
  expect(found).toHaveLength(1);
  return found[0]!;
}

function container(pod: PodSpec, name: string): Container {
  const found = [...(pod.initContainers ?? []), ...pod.containers].find((c) => c.name === name);
  expect(found).toBeDefined();
  return found!;
}

/** Every label a selector asks for is on the pods. */
function expectSelects(selector: Record<string, string>, podLabels: Record<string, string>): void {
  expect(Object.keys(selector).length).toBeGreaterThan(0);
  expect(podLabels).toMatchObject(selector);
}

/**
 * The environment the kubelet gives the container: the image's, then each entry in order, with
 * $(NAME) expanded only from entries above it (a reference to a later one stays as written).
 */
function containerEnv(c: Container, from: { image?: Record<string, string>; fields?: Record<string, string>; secrets?: Record<string, string> }) {
  const declared: Record<string, string> = {};
  for (const v of c.env ?? []) {
    const { fieldRef, secretKeyRef } = v.valueFrom ?? {};
    const value =
      v.value?.replace(/\$\((\w+)\)/g, (whole, name: string) => declared[name] ?? whole) ??
      (fieldRef ? from.fields?.[fieldRef.fieldPath] : secretKeyRef ? from.secrets?.[`${secretKeyRef.name}/${secretKeyRef.key}`] : undefined);
    expect({ name: v.name, value }).toEqual({ name: v.name, value: expect.any(String) });
    declared[v.name] = value!;
  }
  return { ...from.image, ...declared };
}

/** The ConfigMap file DOCXY_CONFIG names inside the pod, written out; `env` with DOCXY_CONFIG pointing at the copy. */
function withConfigFile(objects: K8sObject[], pod: PodSpec, c: Container, env: Record<string, string>): { text: string; env: Record<string, string> } {
  const path = env.DOCXY_CONFIG!;
  const mount = c.volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`));
  expect({ path, mounted: mount !== undefined }).toEqual({ path, mounted: true });
  const configMap = pod.volumes.find((v) => v.name === mount!.name)?.configMap;
  const text = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === configMap?.name)?.data?.[path.slice(mount!.mountPath.length + 1)];
  expect({ path, text }).toEqual({ path, text: expect.any(String) });
  const file = join(tempDir(), "docxy.toml");
  writeFileSync(file, text!);
  return { text: text!, env: { ...env, DOCXY_CONFIG: file } };
}

const gibibytes = (quantity: string) => {
  expect(quantity).toMatch(/^\d+Gi$/);
  return parseInt(quantity, 10) * 2 ** 30;
};

const base = kustomize("deploy/kubernetes");
const statefulSet = one(base, "StatefulSet");
const pod: PodSpec = statefulSet.spec.template.spec;
const podLabels: Record<string, string> = statefulSet.spec.template.metadata.labels;
const docxy = container(pod, "docxy");
const port = (name: string) => docxy.ports?.find((p) => p.name === name)?.containerPort;

kubernetesTest("the base's docxy.toml is valid, docxy listens on the port the container and the Service name, and its cache is on the pod's claim", async () => {
  expect(base.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Service", "StatefulSet"]);
  const { env } = withConfigFile(base, pod, docxy, containerEnv(docxy, { image: IMAGE.env }));
  const result = await checkConfig(env);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" }); // a warning would be an unknown key
  const listening = Number(/listeners: http :(\d+)\n/.exec(result.stdout)?.[1]);
  expect(port("http")).toBe(listening);
  const service = one(base, "Service");
  expect(service.spec.ports).toEqual([{ name: "http", port: listening, targetPort: "http" }]);
  expectSelects(service.spec.selector, podLabels);
  expectSelects(statefulSet.spec.selector.matchLabels, podLabels);

  const [claim] = statefulSet.spec.volumeClaimTemplates;
  const claimMount = docxy.volumeMounts.find((m) => m.name === claim.metadata.name)!;
  expect(/cache: (\S+), max/.exec(result.stdout)?.[1]).toStartWith(`${claimMount.mountPath}/`);
  // Fills in progress are written to the same disk before they count in max_size.
  const { config } = await loadConfig({ env });
  expect(config.cache.max_size + config.cache.max_fill_bytes).toBeLessThanOrEqual(gibibytes(claim.spec.resources.requests.storage));
}, BUDGET);

kubernetesTest("the probe paths answer 200 on a docxy running the base's docxy.toml, on its named port, and outwait /health's upstream probes", async () => {
  const probes = [docxy.readinessProbe!, docxy.livenessProbe!];
  const { text, env } = withConfigFile(base, pod, docxy, containerEnv(docxy, { image: IMAGE.env }));
  const { config } = await loadConfig({ env });
  for (const probe of probes) {
    expect(port(probe.httpGet.port)).toBe(config.server.http_port);
    expect(probe.timeoutSeconds).toBeGreaterThan(config.upstream.ping_timeout);
  }
  // Started on a free port (startDocxy's --http-port 0), with upstreams it fails to reach within 1 s.
  const proxy = await startDocxy({ config: text, env: { DOCXY_CACHE_DIR: join(tempDir(), "cache"), DOCXY_UPSTREAM_PING_TIMEOUT: "1" } });
  try {
    for (const probe of probes) expect({ path: probe.httpGet.path, status: (await fetch(`${proxy.url}${probe.httpGet.path}`)).status }).toEqual({ path: probe.httpGet.path, status: 200 });
  } finally {
    await proxy.stop();
  }
}, BUDGET);

kubernetesTest("docxy runs as the image's non-root user on a read-only root, writing only to its claim, from the image of this version", () => {
  expect(docxy.image).toBe(`docxy:${version}`);
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: IMAGE.uid, runAsGroup: IMAGE.uid, fsGroup: IMAGE.uid });
  expect(docxy.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
  expect(docxy.volumeMounts.filter((m) => !m.readOnly).map((m) => m.mountPath)).toEqual([IMAGE.state]);
});

const fleet = kustomize("deploy/kubernetes/fleet");
const fleetSet = one(fleet, "StatefulSet");
const fleetPod: PodSpec = fleetSet.spec.template.spec;
const fleetDocxy = container(fleetPod, "docxy");

kubernetesTest("the fleet overlay runs 3 nodes spread over machines, with a PodDisruptionBudget over them that lets one go at a time", () => {
  expect(fleet.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"]);
  expect(fleetSet.spec.replicas).toBe(3);
  const budget = one(fleet, "PodDisruptionBudget");
  expect(budget.spec.maxUnavailable).toBe(1);
  expectSelects(budget.spec.selector.matchLabels, fleetSet.spec.template.metadata.labels);
  expectSelects(fleetPod.topologySpreadConstraints![0]!.labelSelector.matchLabels, fleetSet.spec.template.metadata.labels);
});

/** The keys of README's `kubectl create secret generic docxy-fleet` command. */
function readmeSecretKeys(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const command = /create secret generic docxy-fleet((?:[^\n]*\\\n)*[^\n]*)/.exec(readme)?.[1] ?? "";
  return [...command.matchAll(/--from-literal=(\w+)=/g)].map((m) => m[1]!).sort();
}

kubernetesTest("a fleet node's environment, with the Secret README creates, is a valid node advertising its pod IP on docxy's port; docxy reads every variable", async () => {
  const refs = (fleetDocxy.env ?? []).flatMap((v) => v.valueFrom?.secretKeyRef ?? []);
  expect(new Set(refs.map((r) => r.name))).toEqual(new Set(["docxy-fleet"]));
  expect(readmeSecretKeys()).toEqual(refs.map((r) => r.key).sort());

  const [redisPort, s3Port] = [await freePort(), await freePort()]; // nothing listens: both unreachable
  const secret: Record<string, string> = {
    DOCXY_FLEET_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    DOCXY_FLEET_SECRET: "a-fleet-secret-of-at-least-32-characters",
    DOCXY_CACHE_S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
    DOCXY_CACHE_S3_BUCKET: "docxy",
    DOCXY_CACHE_S3_ACCESS_KEY_ID: "key-id",
    DOCXY_CACHE_S3_SECRET_ACCESS_KEY: "secret-key",
  };
  const secrets = Object.fromEntries(refs.map((r) => [`${r.name}/${r.key}`, secret[r.key]!]));
  const podEnv = containerEnv(fleetDocxy, { image: IMAGE.env, fields: { "status.podIP": "10.1.2.3" }, secrets });
  const { env } = withConfigFile(fleet, fleetPod, fleetDocxy, podEnv);
  const result = await checkConfig(env);
  expect({ code: result.code, warnings: result.stderr.includes("warning") }).toEqual({ code: 0, warnings: false });
  expect(result.stdout).toContain(`storage: s3 bucket docxy at http://127.0.0.1:${s3Port}`);
  expect(result.stdout).toContain(`Redis redis://127.0.0.1:${redisPort}: unreachable`);
  expect(env.DOCXY_FLEET_ADVERTISE_URL).toBe(`http://10.1.2.3:${/listeners: http :(\d+)\n/.exec(result.stdout)?.[1]}`);

  const [claim] = fleetSet.spec.volumeClaimTemplates;
  const { config } = await loadConfig({ env });
  expect(config.cache.s3.hot_tier_size + config.cache.max_fill_bytes).toBeLessThanOrEqual(gibibytes(claim.spec.resources.requests.storage));
  await expectEachVariableRead(env, (fleetDocxy.env ?? []).map((v) => v.name));
}, BUDGET);

const mirror = kustomize("deploy/kubernetes/node-mirror");
const mirrorPod: PodSpec = one(mirror, "DaemonSet").spec.template.spec;
const writer = container(mirrorPod, "write-hosts");
const mirrorFiles = one(mirror, "ConfigMap").data!;
const hostsFiles = Object.keys(mirrorFiles).filter((f) => f.endsWith(".toml"));

/** README's hosts.toml files ("containerd / Kubernetes"), by registry: the one after "certs.d/<registry>/hosts.toml". */
function readmeHostsFiles(): Record<string, string> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### containerd / Kubernetes")).split("\n### ")[0]!;
  const files: Record<string, string> = {};
  let registry = "";
  let inToml = false;
  for (const line of section.split("\n")) {
    if (line.startsWith("```")) inToml = line === "```toml";
    else if (/certs\.d\/[^/]+\/hosts\.toml/.test(line) && (!inToml || line.startsWith("#"))) registry = /certs\.d\/([^/]+)\//.exec(line)![1]!;
    else if (inToml) files[registry] = `${files[registry] ?? ""}${line}\n`;
  }
  return files;
}

kubernetesTest("node-mirror's hosts files are README's hosts.toml files, one per registry README lists, with @MIRROR@ for docxy's address", () => {
  const readme = readmeHostsFiles();
  expect(hostsFiles.map((f) => f.slice(0, -".toml".length)).sort()).toEqual(Object.keys(readme).sort());
  for (const file of hostsFiles) {
    const registry = file.slice(0, -".toml".length);
    expect(Bun.TOML.parse(mirrorFiles[file]!.replaceAll("@MIRROR@", "http://docxy.example.com:5000"))).toEqual(Bun.TOML.parse(readme[registry]!));
  }
});

kubernetesTest("the init container's script writes each registry's hosts.toml into the node's certs.d with the node's address, and warns without config_path", () => {
  const env = containerEnv(writer, { fields: { "status.hostIP": "192.0.2.7" } });
  const mountOf = (volume: (v: PodSpec["volumes"][number]) => boolean) =>
    writer.volumeMounts.find((m) => m.name === mirrorPod.volumes.find(volume)?.name)?.mountPath;
  expect(env.SOURCE).toBe(mountOf((v) => v.configMap !== undefined)!);
  expect(env.CERTS_D).toBe(mountOf((v) => v.hostPath?.path === "/etc/containerd/certs.d")!);
  expect(env.CONTAINERD_CONFIG).toBe(`${mountOf((v) => v.hostPath?.path === "/etc/containerd")}/config.toml`);
  expect(writer.command).toEqual(["/bin/sh", `${env.SOURCE}/write-hosts.sh`]);

  // The container's paths, under a temp dir standing for the node.
  const node = tempDir();
  const inNode = (path: string) => join(node, path);
  mkdirSync(inNode(env.SOURCE!), { recursive: true });
  for (const [name, text] of Object.entries(mirrorFiles)) writeFileSync(join(inNode(env.SOURCE!), name), text);
  mkdirSync(dirname(inNode(env.CONTAINERD_CONFIG!)), { recursive: true });
  const run = (containerdConfig: string) => {
    writeFileSync(inNode(env.CONTAINERD_CONFIG!), containerdConfig);
    const paths = { SOURCE: inNode(env.SOURCE!), CERTS_D: inNode(env.CERTS_D!), CONTAINERD_CONFIG: inNode(env.CONTAINERD_CONFIG!) };
    const result = Bun.spawnSync(["sh", inNode(writer.command![1]!)], { env: { PATH: process.env.PATH ?? "", ...env, ...paths }, stderr: "pipe" });
    return { code: result.exitCode, stderr: result.stderr.toString() };
  };

  expect(run("version = 2\n")).toEqual({ code: 0, stderr: expect.stringContaining('config_path = "/etc/containerd/certs.d"') });
  for (const file of hostsFiles) {
    const registry = file.slice(0, -".toml".length);
    expect(readdirSync(join(inNode(env.CERTS_D!), registry))).toEqual(["hosts.toml"]);
    const written = readFileSync(join(inNode(env.CERTS_D!), registry, "hosts.toml"), "utf8");
    expect(written).toBe(mirrorFiles[file]!.replaceAll("@MIRROR@", "http://192.0.2.7:30500"));
  }
  const configured = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n';
  expect(run(configured)).toEqual({ code: 0, stderr: "" });
}, BUDGET);

kubernetesTest("containerd reaches docxy at MIRROR: its port is the NodePort of a Service over docxy's pods that targets docxy's port", () => {
  const mirrorUrl = new URL(containerEnv(writer, { fields: { "status.hostIP": "192.0.2.7" } }).MIRROR!);
  expect(mirrorUrl.hostname).toBe("192.0.2.7");
  const service = one(mirror, "Service");
  expect(service.spec.type).toBe("NodePort");
  const [servicePort] = service.spec.ports;
  expect(servicePort.nodePort).toBe(Number(mirrorUrl.port));
  expect(port(servicePort.targetPort)).toBe(servicePort.port);
  expectSelects(service.spec.selector, podLabels);
});

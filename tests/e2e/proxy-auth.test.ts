/**
 * docxy's own users with the real daemons: `docker login <docxy>` then a pull
 * works for a listed user and fails for anyone else, and containerd's
 * `--user` (an OAuth password grant to docxy) likewise. docxy pulls upstream
 * as itself, here with a server-side account the token server logs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDocxy, type Docxy } from "../support/docxy-process";
import { htpasswdLine } from "../support/htpasswd";
import { startUpstream, upstreamEntryToml, type Upstream } from "../support/upstream";
import { containerdUnavailable, startContainerd, type Containerd } from "./support/containerd";
import { dockerdUnavailable, startDockerd, type Dockerd } from "./support/dockerd";

const noDocker = dockerdUnavailable();
const noContainerd = containerdUnavailable();
if (noDocker) console.warn(`SKIPPED docker cases of tests/e2e/proxy-auth.test.ts: ${noDocker}`);
if (noContainerd) console.warn(`SKIPPED containerd cases of tests/e2e/proxy-auth.test.ts: ${noContainerd}`);

let upstream: Upstream;
let docxy: Docxy;
let host: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-e2e-users-"));
  writeFileSync(join(dir, "htpasswd"), await htpasswdLine("carol", "carol-pw"));
  upstream = await startUpstream({ onlyThroughProxy: true, users: { alice: "secret", hubbot: "bot-token" } });
  docxy = await startDocxy({
    env: { HUB_TOKEN: "bot-token" },
    config: `${upstreamEntryToml(upstream, "dockerhub", `credentials = [{ username = "hubbot", password_env = "HUB_TOKEN" }]\n`)}
[auth]
enabled = true
htpasswd = "${join(dir, "htpasswd")}"
`,
  });
  host = new URL(docxy.url).host;
}, 60_000);
afterAll(async () => {
  await docxy?.stop();
  await upstream?.stop();
});

describe.skipIf(noDocker !== undefined)("docker login <docxy>", () => {
  let dockerd: Dockerd;
  beforeAll(async () => {
    dockerd = await startDockerd({ mirrors: [] });
  }, 180_000);
  afterAll(async () => {
    await dockerd?.stop();
  }, 90_000);

  test("an unknown user and a wrong password fail; the listed user logs in and pulls a private image as docxy's account", async () => {
    const ref = `${host}/private/secret:latest`;
    expect((await dockerd.docker(["pull", ref])).code).not.toBe(0);
    expect((await dockerd.docker(["login", host, "-u", "mallory", "--password-stdin"], { stdin: "carol-pw\n" })).code).not.toBe(0);
    expect((await dockerd.docker(["login", host, "-u", "carol", "--password-stdin"], { stdin: "wrong\n" })).code).not.toBe(0);
    const right = await dockerd.docker(["login", host, "-u", "carol", "--password-stdin"], { stdin: "carol-pw\n" });
    expect(right.stdout).toContain("Login Succeeded");
    upstream.tokenLog.length = 0;
    await dockerd.dockerOk(["pull", ref]);
    const [image] = JSON.parse(await dockerd.dockerOk(["image", "inspect", ref]));
    expect(image.RepoDigests).toContain(`${host}/private/secret@${upstream.images.secret.digest}`);
    // upstream, the pull was made with the server-side account, never with carol's docxy login
    expect(upstream.tokenLog.length).toBeGreaterThan(0);
    expect(upstream.tokenLog.every((r) => r.user === "hubbot")).toBe(true);
  }, 120_000);
});

describe.skipIf(noContainerd !== undefined)("containerd --user", () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd({ mirrorHost: host });
  }, 60_000);
  afterAll(async () => {
    await containerd?.stop();
  }, 30_000);

  const pull = (ref: string, ...flags: string[]) => containerd.ctr(["images", "pull", "--hosts-dir", containerd.hostsDir, ...flags, ref], 120_000);

  test("without docxy credentials the mirror refuses; with them acme/app pulls by digest", async () => {
    expect((await pull("docker.io/acme/app:v1")).code).not.toBe(0);
    expect((await pull("docker.io/acme/app:v1", "--user", "carol:wrong")).code).not.toBe(0);
    const ok = await pull("docker.io/acme/app:v1", "--user", "carol:carol-pw");
    expect(ok.code).toBe(0);
    const line = (await containerd.ctrOk(["images", "ls"])).split("\n").find((l) => l.startsWith("docker.io/acme/app:v1 "));
    expect(line?.split(/\s+/)[2]).toBe(upstream.images.app.digest);
  }, 120_000);
});

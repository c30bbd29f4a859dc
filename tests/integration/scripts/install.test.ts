/**
 * scripts/install.sh, scripts/docxy.service and scripts/docxy.example.toml, as an administrator
 * meets them — but staged: every run uses `--root <tmpdir>`, so nothing outside the temp
 * directory changes (the user and systemctl steps are printed as "would run: ..." there).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TSchema } from "@sinclair/typebox";
import { ConfigSchema } from "../../../src/config/schema";
import { removeAtExit } from "../../support/cleanup";
import { DOCXY_BIN, ensureBinary, startDocxy } from "../../support/docxy-process";

const ROOT = resolve(import.meta.dir, "../../..");
const INSTALL = join(ROOT, "scripts/install.sh");
const UNIT_TEMPLATE = join(ROOT, "scripts/docxy.service");
const EXAMPLE = join(ROOT, "scripts/docxy.example.toml");

/** What the unit must say, key by key (the brief of the unit and README "Configuration"). */
const UNIT_LINES = [
  "User=docxy",
  "ExecReload=/bin/kill -HUP $MAINPID",
  "Restart=on-failure",
  "WorkingDirectory=/var/lib/docxy",
  "Environment=DOCXY_CACHE_DIR=/var/lib/docxy/cache",
  "StateDirectory=docxy",
  "ConfigurationDirectory=docxy",
  "NoNewPrivileges=yes",
  "ProtectSystem=strict",
  "ProtectHome=yes",
  "PrivateTmp=yes",
  "PrivateDevices=yes",
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectControlGroups=yes",
  "RestrictSUIDSGID=yes",
  "LockPersonality=yes",
  "RestrictRealtime=yes",
  "ReadWritePaths=/var/lib/docxy",
  "AmbientCapabilities=CAP_NET_BIND_SERVICE",
  "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
  "LimitNOFILE=65536",
  "WantedBy=multi-user.target",
];

let work: string;
let version: string; // "docxy 0.1.0", as dist/docxy says it

beforeAll(async () => {
  await ensureBinary();
  work = mkdtempSync(join(tmpdir(), "docxy-install-test-"));
  removeAtExit(work);
  version = run([DOCXY_BIN, "--version"]).stdout.trim();
  expect(version).toMatch(/^docxy \S+$/);
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(argv: string[], env: Record<string, string> = {}) {
  const result = Bun.spawnSync(argv, {
    cwd: ROOT,
    // A clean environment: no DOCXY_* from the developer's shell.
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work ?? tmpdir(), TMPDIR: tmpdir(), ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

function install(args: string[], env: Record<string, string> = {}) {
  const result = run(["bash", INSTALL, ...args], env);
  return { ...result, output: result.stdout + result.stderr };
}

/** A fresh staging root below the test's temp directory. */
function newRoot(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const paths = (root: string, prefix = "/usr/local") => ({
  bin: join(root, prefix, "bin/docxy"),
  unit: join(root, "etc/systemd/system/docxy.service"),
  config: join(root, "etc/docxy/docxy.toml"),
  state: join(root, "var/lib/docxy"),
});

const mode = (path: string) => statSync(path).mode & 0o777;

/** Temp names the installer uses for atomic replacement must never be left behind. */
function leftovers(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (/\.new\.\d+$/.test(entry.name)) found.push(join(dir, entry.name));
    }
  };
  walk(root);
  return found;
}

describe("install.sh --root", () => {
  test("a fresh install writes the binary, the unit, the config skeleton and the state directory", () => {
    const root = newRoot("fresh");
    const p = paths(root);
    const result = install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]);
    expect(result.code, result.output).toBe(0);

    // The binary runs from its new place.
    expect(mode(p.bin) & 0o111).toBe(0o111);
    const installed = run([p.bin, "--version"]);
    expect(installed.code).toBe(0);
    expect(installed.stdout.trim()).toBe(version);

    // The unit: the real binary path (here the default prefix) and the hardening.
    const unit = readFileSync(p.unit, "utf8");
    expect(unit).toContain("\nExecStart=/usr/local/bin/docxy -c /etc/docxy/docxy.toml\n");
    for (const line of UNIT_LINES) expect(unit.split("\n")).toContain(line);
    expect(unit).toMatch(/^TimeoutStopSec=(\d+)s?$/m);
    expect(Number(/^TimeoutStopSec=(\d+)s?$/m.exec(unit)![1])).toBeGreaterThan(10); // docxy drains for up to 10 s
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=/m); // the Bun JIT needs W+X memory
    expect(mode(p.unit)).toBe(0o644);

    // The config: the example, readable by root and the docxy group only (it may hold secrets).
    expect(readFileSync(p.config, "utf8")).toBe(readFileSync(EXAMPLE, "utf8"));
    expect(mode(p.config)).toBe(0o640);
    expect(statSync(p.state).isDirectory()).toBe(true);
    expect(mode(p.state)).toBe(0o750);

    // Staged: nothing on the real system was touched, only announced.
    expect(result.stdout).toContain("would run: useradd --system --user-group --home-dir /var/lib/docxy --shell /usr/sbin/nologin docxy");
    expect(result.stdout).toContain("would run: systemctl daemon-reload");
    expect(result.stdout).not.toMatch(/^running:/m);
    expect(result.stdout).not.toContain("would run: systemctl enable"); // --no-start
    // It says how to point Docker at docxy.
    expect(result.stdout).toContain('"registry-mirrors"');
    expect(result.stdout).toContain(":5000");
    expect(leftovers(root)).toEqual([]);
  });

  test("--prefix is substituted into the unit's ExecStart", () => {
    const root = newRoot("prefix");
    const p = paths(root, "/opt/docxy");
    const result = install(["--root", root, "--prefix", "/opt/docxy/", "--binary", DOCXY_BIN]);
    expect(result.code, result.output).toBe(0);
    expect(result.stdout).toContain("would run: systemctl enable --now docxy.service"); // without --no-start, staged
    expect(run([p.bin, "--version"]).stdout.trim()).toBe(version);
    const unit = readFileSync(p.unit, "utf8");
    expect(unit).toContain("\nExecStart=/opt/docxy/bin/docxy -c /etc/docxy/docxy.toml\n");
    expect(unit).not.toContain("/usr/local/bin/docxy");
    expect(existsSync(join(root, "usr/local/bin/docxy"))).toBe(false);
  });

  test("an upgrade replaces the binary by rename, keeps a modified config, and a rerun changes nothing", () => {
    const root = newRoot("upgrade");
    const p = paths(root);
    expect(install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]).code).toBe(0);

    const edited = readFileSync(p.config, "utf8").replace("http_port = 5000", "http_port = 8080") + '\n# local note\n';
    writeFileSync(p.config, edited);
    // Pretend an older docxy is installed.
    writeFileSync(p.bin, '#!/bin/sh\necho "docxy 0.0.1"\n');
    chmodSync(p.bin, 0o755);
    const oldInode = statSync(p.bin).ino;

    const upgrade = install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]);
    expect(upgrade.code, upgrade.output).toBe(0);
    expect(upgrade.stdout).toContain(`upgraded ${p.bin}: docxy 0.0.1 -> ${version}`);
    expect(upgrade.stdout).toContain(`kept the existing config ${p.config}`);
    expect(upgrade.stdout).toContain("http://"); // the Docker hint uses the configured port
    expect(upgrade.stdout).toContain(":8080");
    expect(readFileSync(p.config, "utf8")).toBe(edited);
    expect(statSync(p.bin).ino).not.toBe(oldInode); // a new file renamed into place, not rewritten in place
    expect(run([p.bin, "--version"]).stdout.trim()).toBe(version);

    const again = install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]);
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toContain(`binary unchanged: ${p.bin}`);
    expect(again.stdout).toContain(`unit unchanged: ${p.unit}`);
    expect(readFileSync(p.config, "utf8")).toBe(edited);
    expect(leftovers(root)).toEqual([]);
  });

  test("a binary that does not run is refused and the installed one stays", () => {
    const root = newRoot("broken");
    const p = paths(root);
    expect(install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]).code).toBe(0);
    const before = statSync(p.bin);
    const junk = join(work, "not-docxy");
    writeFileSync(junk, "this is not an executable\n");

    const result = install(["--root", root, "--binary", junk, "--no-start"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("the new binary does not run");
    const after = statSync(p.bin);
    expect([after.ino, after.size]).toEqual([before.ino, before.size]);
    expect(run([p.bin, "--version"]).stdout.trim()).toBe(version);
    expect(leftovers(root)).toEqual([]);
  });

  test("--uninstall removes the binary and the unit and keeps config and cache; --purge removes those too", () => {
    const root = newRoot("uninstall");
    const p = paths(root);
    expect(install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]).code).toBe(0);
    mkdirSync(join(p.state, "cache"));
    writeFileSync(join(p.state, "cache/marker"), "cached");

    const removed = install(["--root", root, "--uninstall"]);
    expect(removed.code, removed.output).toBe(0);
    expect(removed.stdout).toContain("would run: systemctl disable --now docxy.service");
    expect(existsSync(p.bin)).toBe(false);
    expect(existsSync(p.unit)).toBe(false);
    expect(readFileSync(p.config, "utf8")).toBe(readFileSync(EXAMPLE, "utf8"));
    expect(readFileSync(join(p.state, "cache/marker"), "utf8")).toBe("cached");

    // Uninstalling twice is fine.
    expect(install(["--root", root, "--uninstall"]).code).toBe(0);

    const purged = install(["--root", root, "--uninstall", "--purge"]);
    expect(purged.code, purged.output).toBe(0);
    expect(existsSync(join(root, "etc/docxy"))).toBe(false);
    expect(existsSync(p.state)).toBe(false);
  });

  test("--version downloads docxy-linux-<arch> of that release (here from a file:// mirror) and checks what it got", () => {
    if (!Bun.which("curl")) {
      console.log("skipped: curl is not installed");
      return;
    }
    const arch = process.arch === "arm64" ? "arm64" : "x64";
    const number = version.replace(/^docxy /, "");
    const releases = join(work, "releases");
    mkdirSync(join(releases, `v${number}`), { recursive: true });
    copyFileSync(DOCXY_BIN, join(releases, `v${number}`, `docxy-linux-${arch}`));
    mkdirSync(join(releases, "v9.9.9"), { recursive: true });
    copyFileSync(DOCXY_BIN, join(releases, "v9.9.9", `docxy-linux-${arch}`)); // mislabelled
    // Each release lists its files' SHA-256 (scripts/release.ts); 9.9.11 lists another binary's.
    const sum = new Bun.CryptoHasher("sha256").update(readFileSync(DOCXY_BIN)).digest("hex");
    for (const v of [number, "9.9.9"]) writeFileSync(join(releases, `v${v}`, "SHA256SUMS"), `${"0".repeat(64)}  docxy.service\n${sum}  docxy-linux-${arch}\n`);
    mkdirSync(join(releases, "v9.9.11"), { recursive: true });
    copyFileSync(DOCXY_BIN, join(releases, "v9.9.11", `docxy-linux-${arch}`));
    writeFileSync(join(releases, "v9.9.11", "SHA256SUMS"), `${"0".repeat(64)}  docxy-linux-${arch}\n`);
    const env = { DOCXY_RELEASE_BASE_URL: `file://${releases}` };

    const root = newRoot("download");
    const p = paths(root);
    const result = install(["--root", root, "--version", `v${number}`, "--no-start"], env);
    expect(result.code, result.output).toBe(0);
    expect(result.stdout).toContain(`downloading file://${releases}/v${number}/docxy-linux-${arch}`);
    expect(result.stdout).toContain(`SHA-256 ok (SHA256SUMS of v${number})`);
    expect(run([p.bin, "--version"]).stdout.trim()).toBe(version);
    const installed = statSync(p.bin).ino;

    const tampered = install(["--root", root, "--version", "9.9.11", "--no-start"], env);
    expect(tampered.code).not.toBe(0);
    expect(tampered.stderr).toContain(`SHA-256 mismatch for `);
    expect(tampered.stderr).toContain(`SHA256SUMS of v9.9.11 says ${"0".repeat(64)}; nothing was changed`);
    expect(statSync(p.bin).ino).toBe(installed);

    const wrong = install(["--root", root, "--version", "9.9.9", "--no-start"], env);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain(`downloaded v9.9.9 but the binary says '${version}'`);
    const missing = install(["--root", root, "--version", "9.9.10", "--no-start"], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("download failed");
    // A release without SHA256SUMS is not installed either.
    mkdirSync(join(releases, "v9.9.12"), { recursive: true });
    copyFileSync(DOCXY_BIN, join(releases, "v9.9.12", `docxy-linux-${arch}`));
    const unlisted = install(["--root", root, "--version", "9.9.12", "--no-start"], env);
    expect(unlisted.code).not.toBe(0);
    expect(unlisted.stderr).toContain(`download failed: file://${releases}/v9.9.12/SHA256SUMS`);
    expect(statSync(p.bin).ino).toBe(installed);
  });

  test("usage mistakes are refused before anything is written", () => {
    const root = join(work, "never-created");
    expect(install(["--root", root, "--bogus"]).code).toBe(2);
    expect(install(["--root", root, "--binary", DOCXY_BIN, "--version", "1.0.0"]).stderr).toContain("exclude each other");
    expect(install(["--root", root, "--prefix", "relative/dir", "--binary", DOCXY_BIN]).stderr).toContain("--prefix");
    expect(install(["--root", root, "--purge"]).stderr).toContain("--purge only goes with --uninstall");
    expect(existsSync(root)).toBe(false);
  });
});

describe("docxy.service", () => {
  test("systemd-analyze verify accepts the installed unit without warnings", () => {
    if (!Bun.which("systemd-analyze")) {
      console.log("skipped systemd-analyze verify: systemd-analyze is not installed (the test does not install systemd)");
      return;
    }
    const root = newRoot("verify");
    expect(install(["--root", root, "--binary", DOCXY_BIN, "--no-start"]).code).toBe(0);
    // verify checks that ExecStart exists, so point it at the staged binary (the unit as installed
    // names /usr/local/bin/docxy, which is not there on this machine).
    const dir = join(work, "verify-unit");
    mkdirSync(dir, { recursive: true });
    const unit = readFileSync(paths(root).unit, "utf8").replaceAll("/usr/local/bin/docxy", paths(root).bin);
    writeFileSync(join(dir, "docxy.service"), unit);
    const result = run(["systemd-analyze", "verify", join(dir, "docxy.service")], { SYSTEMD_LOG_COLOR: "0" });
    const output = (result.stdout + result.stderr).trim();
    expect(result.code, output).toBe(0);
    // Unknown keys and bad values are only warnings ("..., ignoring"): none may appear.
    expect(output.split("\n").filter((l) => /ignoring|unknown|failed|invalid|not executable/i.test(l))).toEqual([]);
  });

  test("the template names /usr/local/bin/docxy, the placeholder the installer substitutes", () => {
    const unit = readFileSync(UNIT_TEMPLATE, "utf8");
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/docxy -c \/etc\/docxy\/docxy\.toml$/m);
    expect(unit).toMatch(/^# .*MemoryDenyWriteExecute/m); // the reason it is absent is written down
  });
});

describe("docxy.example.toml", () => {
  test("the binary starts with it (-c) and warns about no key", async () => {
    const cache = join(work, "example-cache");
    const docxy = await startDocxy({ args: ["-c", EXAMPLE], env: { DOCXY_CACHE_DIR: cache } });
    try {
      expect(docxy.log()).toContain(`config=${EXAMPLE}`);
      expect(docxy.log()).not.toContain("unknown key");
      expect(existsSync(cache)).toBe(true);
    } finally {
      await docxy.stop();
    }
  }, 30_000);

  test("every setting in it, commented out (#key) or not, is a key of src/config/schema.ts", () => {
    // `#key = value` and `#[table]` lines (no space after #) are settings to switch on; uncommented
    // all together they must still be valid TOML.
    const text = readFileSync(EXAMPLE, "utf8");
    const uncommented = text.replace(/^#(?=[[a-z])/gm, "");
    expect(uncommented).not.toBe(text);
    const parsed = Bun.TOML.parse(uncommented) as Record<string, unknown>;

    const checked: string[] = [];
    const unknown: string[] = [];
    const walk = (schema: TSchema, value: unknown, path: string) => {
      if (schema.type === "array" && Array.isArray(value)) {
        value.forEach((item, i) => walk(schema.items as TSchema, item, `${path}[${i}]`));
        return;
      }
      const properties = (schema as { properties?: Record<string, TSchema> }).properties;
      if (schema.type !== "object" || !properties || typeof value !== "object" || value === null) return;
      for (const [key, child] of Object.entries(value)) {
        const name = path ? `${path}.${key}` : key;
        const childSchema = properties[key];
        if (!childSchema) unknown.push(name);
        else {
          checked.push(name);
          walk(childSchema, child, name);
        }
      }
    };
    walk(ConfigSchema, parsed, "");
    expect(unknown).toEqual([]);
    // The skeleton covers what the brief asks for.
    for (const key of [
      "server.http_port",
      "server.public_base_url",
      "cache.dir",
      "auth.enabled",
      "auth.htpasswd",
      "access.allow",
      "policy.allow",
      "limits.requests_per_minute",
      "registry.upstreams[0].credentials[0].password_file",
    ]) {
      expect(checked).toContain(key);
    }
    expect((parsed.server as { http_port: number }).http_port).toBe(5000);
    expect((parsed.cache as { dir: string }).dir).toBe("/var/lib/docxy/cache");
  });
});

/**
 * The image policy file: loading, reloading on an in-place write, on a file
 * renamed over it and on a Kubernetes-style symlink swap, and a broken edit
 * that keeps the previous rules and is reported. Reloads are awaited by
 * polling `current()` within a deadline, never by sleeping a fixed time.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImagePolicyFile } from "../../src/policy/image-policy-file";
import type { ImagePolicy } from "../../src/policy/image-rules";

const root = mkdtempSync(join(tmpdir(), "docxy-policy-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const open: ImagePolicyFile[] = [];
afterEach(() => open.splice(0).forEach((file) => file.close()));

let dirs = 0;
function freshDir(): string {
  const dir = join(root, `case-${++dirs}`);
  mkdirSync(dir);
  return dir;
}

async function openFile(path: string) {
  const errors: Error[] = [];
  const file = await ImagePolicyFile.open(path, (error) => errors.push(error));
  open.push(file);
  return { file, errors };
}

const allows = (policy: ImagePolicy, registry: string, repository: string, tag?: string) => {
  try {
    policy.check(registry, repository, tag);
    return true;
  } catch {
    return false;
  }
};

/** Polls until `condition` holds; fails after a generous deadline instead of hanging. */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await Bun.sleep(10);
  }
  throw new Error(`timed out waiting until ${what}`);
}

test("loads allow, deny and allow_tags", async () => {
  const path = join(freshDir(), "policy.toml");
  writeFileSync(path, 'allow = ["docker.io/library/*"]\ndeny = ["docker.io/library/ubuntu"]\nallow_tags = ["v*", "latest"]\n');
  const { file } = await openFile(path);
  const policy = file.current();
  expect(allows(policy, "docker.io", "library/alpine", "latest")).toBe(true);
  expect(allows(policy, "docker.io", "library/alpine", "3.20")).toBe(false);
  expect(allows(policy, "docker.io", "library/ubuntu")).toBe(false);
  expect(allows(policy, "ghcr.io", "x/y")).toBe(false);
});

test("an empty file is no rules at all", async () => {
  const path = join(freshDir(), "policy.toml");
  writeFileSync(path, "");
  const { file } = await openFile(path);
  expect(allows(file.current(), "quay.io", "any/thing", "any")).toBe(true);
});

test("one rule may be written as a string, as in the configuration file", async () => {
  const path = join(freshDir(), "policy.toml");
  writeFileSync(path, 'deny = "docker.io/library/ubuntu"\nallow_tags = "v*"\n');
  const { file } = await openFile(path);
  expect(allows(file.current(), "docker.io", "library/ubuntu", "v1")).toBe(false);
  expect(allows(file.current(), "docker.io", "library/alpine", "latest")).toBe(false);
  expect(allows(file.current(), "docker.io", "library/alpine", "v1")).toBe(true);
});

test("given the registries served, a rule for another registry is refused at open and a reload with it is not applied", async () => {
  const path = join(freshDir(), "policy.toml");
  writeFileSync(path, 'deny = ["example.invalid/foo/*"]\n');
  await expect(ImagePolicyFile.open(path, () => {}, ["docker.io"])).rejects.toThrow("no upstream serves the registry example.invalid (served: docker.io)");
  writeFileSync(path, 'deny = ["docker.io/library/ubuntu"]\n');
  const errors: Error[] = [];
  const file = await ImagePolicyFile.open(path, (error) => errors.push(error), ["docker.io"]);
  try {
    writeFileSync(path, 'deny = ["example.invalid/foo/*"]\n');
    await eventually(() => errors.length > 0, "the refused reload");
    expect(errors[0]!.message).toContain("no upstream serves the registry example.invalid");
    expect(allows(file.current(), "docker.io", "library/ubuntu")).toBe(false); // the previous rules stay
  } finally {
    file.close();
  }
});

test("open rejects a file it cannot use: there are no previous rules to keep", async () => {
  const dir = freshDir();
  const cases: [string, string][] = [
    ["allow = [", "TOML Parse error"],
    ['alow = ["docker.io/*"]', 'unknown key "alow"'],
    ["deny = 5", "deny must be a string or an array of strings"],
    ["allow_tags = [1]", "allow_tags must be a string or an array of strings"],
    ['allow = ["docker.io//x"]', "empty path segment"],
  ];
  for (const [i, [text, message]] of cases.entries()) {
    const path = join(dir, `bad-${i}.toml`);
    writeFileSync(path, text);
    await expect(ImagePolicyFile.open(path, () => {})).rejects.toThrow(message);
    await expect(ImagePolicyFile.open(path, () => {})).rejects.toThrow(`image policy ${path}: `);
  }
  await expect(ImagePolicyFile.open(join(dir, "missing.toml"), () => {})).rejects.toThrow("ENOENT");
});

test("an in-place write is picked up", async () => {
  const path = join(freshDir(), "policy.toml");
  writeFileSync(path, 'deny = ["docker.io/library/ubuntu"]\n');
  const { file, errors } = await openFile(path);
  expect(allows(file.current(), "docker.io", "library/alpine")).toBe(true);

  writeFileSync(path, 'deny = ["docker.io/library/alpine"]\n');
  await eventually(() => !allows(file.current(), "docker.io", "library/alpine"), "the new deny rule applies");
  expect(allows(file.current(), "docker.io", "library/ubuntu")).toBe(true);
  expect(errors).toEqual([]);
});

test("a file renamed over the old one is picked up, again and again", async () => {
  const dir = freshDir();
  const path = join(dir, "policy.toml");
  writeFileSync(path, 'allow = ["docker.io/library/one"]\n');
  const { file } = await openFile(path);
  for (const name of ["two", "three", "four"]) {
    writeFileSync(join(dir, "policy.toml.tmp"), `allow = ["docker.io/library/${name}"]\n`);
    renameSync(join(dir, "policy.toml.tmp"), path);
    await eventually(() => allows(file.current(), "docker.io", `library/${name}`), `rule ${name} applies`);
    expect(allows(file.current(), "docker.io", "library/one")).toBe(false);
  }
});

test("a Kubernetes ConfigMap swap (a `..data` symlink re-pointed beside the file) is picked up", async () => {
  const dir = freshDir();
  mkdirSync(join(dir, "v1"));
  mkdirSync(join(dir, "v2"));
  writeFileSync(join(dir, "v1", "policy.toml"), 'deny = ["docker.io/library/alpine"]\n');
  writeFileSync(join(dir, "v2", "policy.toml"), 'deny = ["docker.io/library/ubuntu"]\n');
  symlinkSync("v1", join(dir, "..data"));
  symlinkSync(join("..data", "policy.toml"), join(dir, "policy.toml"));
  const { file } = await openFile(join(dir, "policy.toml"));
  expect(allows(file.current(), "docker.io", "library/alpine")).toBe(false);

  // The only event names `..data`, never policy.toml: the stat check has to notice.
  symlinkSync("v2", join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  await eventually(() => allows(file.current(), "docker.io", "library/alpine"), "the v2 rules apply");
  expect(allows(file.current(), "docker.io", "library/ubuntu")).toBe(false);
});

test("a broken edit keeps the previous rules and is reported; fixing it reloads", async () => {
  const path = join(freshDir(), "policy.toml");
  writeFileSync(path, 'deny = ["docker.io/library/ubuntu"]\n');
  const { file, errors } = await openFile(path);
  const before = file.current();

  writeFileSync(path, 'deny = ["docker.io/library/alpine"\n');
  await eventually(() => errors.length > 0, "the error is reported");
  expect(errors[0]!.message).toStartWith(`image policy ${path}: `);
  expect(errors[0]!.message).toContain("TOML Parse error");
  expect(file.current()).toBe(before);
  expect(allows(file.current(), "docker.io", "library/ubuntu")).toBe(false);

  writeFileSync(path, 'typo = ["docker.io/library/alpine"]\n');
  await eventually(() => errors.length > 1, "the second error is reported");
  expect(errors[1]!.message).toContain('unknown key "typo"');
  expect(file.current()).toBe(before);

  rmSync(path);
  await eventually(() => errors.length > 2, "the missing file is reported");
  expect(errors[2]!.message).toContain("ENOENT");
  expect(file.current()).toBe(before);

  writeFileSync(path, 'deny = ["docker.io/library/alpine"]\n');
  await eventually(() => !allows(file.current(), "docker.io", "library/alpine"), "the fixed file applies");
  expect(errors).toHaveLength(3);
});

test("after close, changes are no longer applied", async () => {
  const dir = freshDir();
  const path = join(dir, "policy.toml");
  writeFileSync(path, 'deny = ["docker.io/library/ubuntu"]\n');
  const { file } = await openFile(path);
  // A second one on the same file sees the same events: once it has reloaded, so would the first have.
  const { file: witness } = await openFile(path);
  const before = file.current();
  file.close();
  writeFileSync(path, 'deny = ["docker.io/library/alpine"]\n');
  await eventually(() => !allows(witness.current(), "docker.io", "library/alpine"), "the witness has the new rules");
  expect(file.current()).toBe(before);
});

/**
 * ProxyUsers over real htpasswd files in a temp directory: bcrypt hashes as
 * htpasswd -B writes them, skipped and malformed lines, hot reload through
 * fs.watch, and static tokens.
 */
import { afterAll, expect, spyOn, test } from "bun:test";
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProxyUsers, type ProxyUsersOptions } from "../../src/auth/users";

const root = mkdtempSync(join(tmpdir(), "docxy-users-"));
const opened: ProxyUsers[] = [];
afterAll(() => {
  for (const users of opened) users.close();
  rmSync(root, { recursive: true, force: true });
});

/** A bcrypt hash in the `$2y$` form `htpasswd -B` writes (Bun itself writes `$2b$`). */
async function htpasswdHash(password: string): Promise<string> {
  const hash = await Bun.password.hash(password, { algorithm: "bcrypt", cost: 4 });
  return `$2y$${hash.slice(4)}`;
}

let files = 0;
/** A fresh directory holding an htpasswd file with `lines`, and ProxyUsers on it recording its callbacks. */
async function usersWith(lines: string[], options: Partial<ProxyUsersOptions> = {}) {
  const dir = mkdtempSync(join(root, `case-${++files}-`));
  const path = join(dir, "htpasswd");
  writeFileSync(path, lines.join("\n") + "\n");
  const errors: string[] = [];
  const reloads: number[] = [];
  const users = await ProxyUsers.open({
    htpasswdPath: path,
    tokens: [],
    onError: (message) => errors.push(message),
    onReload: (count) => reloads.push(count),
    ...options,
  });
  opened.push(users);
  return { users, path, errors, reloads };
}

/** Polls `condition` until it holds, for at most five seconds (fs.watch delivery is asynchronous). */
async function eventually(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met within 5 s");
    await Bun.sleep(20);
  }
}

test("bcrypt entries in $2y$, $2b$ and $2a$ form verify; a wrong password or an unknown user does not", async () => {
  const y = await htpasswdHash("alice-pw");
  const b = await Bun.password.hash("bob-pw", { algorithm: "bcrypt", cost: 4 });
  const a = `$2a$${(await Bun.password.hash("carol-pw", { algorithm: "bcrypt", cost: 4 })).slice(4)}`;
  const { users, errors, reloads } = await usersWith([`alice:${y}`, `bob:${b}`, `carol:${a}`]);

  expect(await users.verifyPassword("alice", "alice-pw")).toBe(true);
  expect(await users.verifyPassword("bob", "bob-pw")).toBe(true);
  expect(await users.verifyPassword("carol", "carol-pw")).toBe(true);
  expect(await users.verifyPassword("alice", "bob-pw")).toBe(false);
  expect(await users.verifyPassword("alice", "")).toBe(false);
  expect(await users.verifyPassword("Alice", "alice-pw")).toBe(false); // names are case-sensitive, as in Apache
  expect(await users.verifyPassword("mallory", "alice-pw")).toBe(false);
  // a cached success is per name and password: another password for the same name is checked again
  expect(await users.verifyPassword("alice", "alice-pw")).toBe(true);
  expect(await users.verifyPassword("alice", "alice-pw ")).toBe(false);
  expect(errors).toEqual([]);
  expect(reloads).toEqual([3]);
});

test("hashes made by crypt(3) (libxcrypt, not Bun): passwords longer than 72 bytes count their first 72, as in htpasswd", async () => {
  // perl -e 'print crypt("x" x 100, q{$2y$04$abcdefghijklmnopqrstuu})'   and   crypt("héllo", q{$2y$05$…}) in UTF-8
  const { users } = await usersWith([
    "long:$2y$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i",
    "accent:$2y$05$abcdefghijklmnopqrstuuWC5BX9CuxiOm/m7/HPylt1BZj.uvIci",
  ]);
  expect(await users.verifyPassword("long", "x".repeat(100))).toBe(true);
  expect(await users.verifyPassword("long", "x".repeat(72) + "anything")).toBe(true);
  expect(await users.verifyPassword("long", "x".repeat(71))).toBe(false);
  expect(await users.verifyPassword("accent", "héllo")).toBe(true);
  expect(await users.verifyPassword("accent", "hello")).toBe(false);
});

test.skipIf(!Bun.which("htpasswd"))("a file made by htpasswd -B verifies", async () => {
  const made = Bun.spawnSync(["htpasswd", "-nbB", "-C", "4", "dave", "dave-pw"]);
  expect(made.exitCode).toBe(0);
  const { users } = await usersWith([made.stdout.toString().trim()]);
  expect(await users.verifyPassword("dave", "dave-pw")).toBe(true);
  expect(await users.verifyPassword("dave", "other")).toBe(false);
});

test("unsupported hashes and repeated names are skipped and reported by line number, never with the hash", async () => {
  const good = await htpasswdHash("pw");
  const { users, errors, reloads, path } = await usersWith([
    "# docxy users",
    "",
    "md5:$apr1$Vn3Ph4lO$Vq4fG2cYhOaBT5ExXhUOE1",
    "sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
    "plain:hunter2",
    "sha512:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
    `  good:${good}  `,
    `good:${await htpasswdHash("second")}`,
    `extra:${good}:a comment field`,
  ]);
  expect(errors).toEqual([
    `${path}:3: unsupported password hash (MD5 $apr1$), line skipped; use bcrypt (htpasswd -B)`,
    `${path}:4: unsupported password hash (SHA-1 {SHA}), line skipped; use bcrypt (htpasswd -B)`,
    `${path}:5: unsupported password hash (plain text or DES crypt), line skipped; use bcrypt (htpasswd -B)`,
    `${path}:6: unsupported password hash (crypt(3)), line skipped; use bcrypt (htpasswd -B)`,
    `${path}:8: user "good" already defined on line 7, line skipped`,
  ]);
  expect(errors.join("\n")).not.toContain("hunter2");
  expect(errors.join("\n")).not.toContain("Vq4fG2");
  expect(reloads).toEqual([2]);
  expect(await users.verifyPassword("good", "pw")).toBe(true);
  expect(await users.verifyPassword("good", "second")).toBe(false); // the first line for a name counts
  expect(await users.verifyPassword("extra", "pw")).toBe(true);
  expect(await users.verifyPassword("plain", "hunter2")).toBe(false);
});

test("a file that does not parse, or does not exist, fails open()", async () => {
  await expect(usersWith([`ok:${await htpasswdHash("pw")}`, "no colon here"])).rejects.toThrow(/htpasswd:2: not a "name:password-hash" line/);
  await expect(usersWith([":$2y$04$nameless"])).rejects.toThrow(/htpasswd:1: not a/);
  const truncated = (await htpasswdHash("pw")).slice(0, 40);
  await expect(usersWith([`cut:${truncated}`])).rejects.toThrow(/htpasswd:1: malformed bcrypt hash$/);
  await expect(ProxyUsers.open({ htpasswdPath: join(root, "missing", "htpasswd"), tokens: [] })).rejects.toThrow();
  await expect(ProxyUsers.open({ htpasswdPath: join(root, "no-such-file"), tokens: [] })).rejects.toThrow();
});

test("without an htpasswd file no password verifies", async () => {
  const users = await ProxyUsers.open({ tokens: [] });
  expect(await users.verifyPassword("", "")).toBe(false);
  expect(await users.verifyPassword("alice", "pw")).toBe(false);
  users.close();
});

test("the file is reloaded when rewritten in place or replaced by rename; a cached success does not outlive the change", async () => {
  const { users, path, reloads } = await usersWith([`alice:${await htpasswdHash("a1")}`]);
  expect(await users.verifyPassword("alice", "a1")).toBe(true); // now cached
  const aliceStamp = users.credentialStamp("alice");

  appendFileSync(path, `bob:${await htpasswdHash("b1")}\n`);
  await eventually(() => users.verifyPassword("bob", "b1"));
  expect(reloads.at(-1)).toBe(2);
  expect(users.credentialStamp("alice")).toBe(aliceStamp!);

  // an editor or a ConfigMap update: a new file renamed over the old one, alice's password changed
  writeFileSync(`${path}.tmp`, `alice:${await htpasswdHash("a2")}\nbob:${await htpasswdHash("b1")}\n`);
  renameSync(`${path}.tmp`, path);
  await eventually(() => users.verifyPassword("alice", "a2"));
  expect(await users.verifyPassword("alice", "a1")).toBe(false);
  expect(users.credentialStamp("alice")).not.toBe(aliceStamp!);

  writeFileSync(path, `bob:${await htpasswdHash("b1")}\n`);
  await eventually(async () => !(await users.verifyPassword("alice", "a2")));
  expect(users.credentialStamp("alice")).toBeUndefined();
  expect(await users.verifyPassword("bob", "b1")).toBe(true);
  expect(reloads.at(-1)).toBe(1);
});

test("a broken or deleted file keeps the previous users and is reported once; a fixed file loads again", async () => {
  const { users, path, errors, reloads } = await usersWith([`alice:${await htpasswdHash("a1")}`]);

  writeFileSync(path, `alice:${await htpasswdHash("a1")}\nbob:${await htpasswdHash("b1")}\ngarbage\n`);
  await eventually(() => errors.length > 0);
  expect(errors).toEqual([`${path}:3: not a "name:password-hash" line; keeping the previous 1 user(s)`]);
  expect(await users.verifyPassword("alice", "a1")).toBe(true);
  expect(await users.verifyPassword("bob", "b1")).toBe(false);

  rmSync(path);
  await eventually(() => errors.length > 1);
  expect(errors[1]).toStartWith(`cannot read ${path}: `);
  expect(errors[1]).toEndWith("; keeping the previous 1 user(s)");
  expect(await users.verifyPassword("alice", "a1")).toBe(true);

  writeFileSync(path, `bob:${await htpasswdHash("b1")}\n`);
  await eventually(() => users.verifyPassword("bob", "b1"));
  expect(await users.verifyPassword("alice", "a1")).toBe(false);
  expect(reloads).toEqual([1, 1]);
  expect(errors).toHaveLength(2);
});

test("static tokens name their user; any other string does not", async () => {
  const users = await ProxyUsers.open({ tokens: ["ci:s3cr3t-token-with:colon", "deploy:another-token", "ci:rotated-token"] });
  expect(users.verifyStaticToken("s3cr3t-token-with:colon")).toBe("ci");
  expect(users.verifyStaticToken("another-token")).toBe("deploy");
  expect(users.verifyStaticToken("rotated-token")).toBe("ci");
  expect(users.verifyStaticToken("another-toke")).toBeUndefined();
  expect(users.verifyStaticToken("")).toBeUndefined();
  expect(users.verifyStaticToken("deploy:another-token")).toBeUndefined();
  // a static token is not a password
  expect(await users.verifyPassword("deploy", "another-token")).toBe(false);
  expect(users.credentialStamp("ci")).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(users.credentialStamp("ci")).not.toBe(users.credentialStamp("deploy")!);
  expect(users.credentialStamp("nobody")).toBeUndefined();
  users.close();
});

test("malformed or repeated static tokens are configuration errors that do not echo the token", async () => {
  for (const bad of [["no-colon-secret"], [":nameless-secret"], ["empty:"]]) {
    const error = await ProxyUsers.open({ tokens: bad }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('static token 1: expected "name:token"');
  }
  await expect(ProxyUsers.open({ tokens: ["a:same-secret", "b:same-secret"] })).rejects.toThrow(
    /^static tokens 1 and 2 are the same token$/,
  );
});

/** The cost of every bcrypt hash verifyPassword checks while `run` runs. */
async function costsChecked(run: () => Promise<unknown>): Promise<number[]> {
  const verify = spyOn(Bun.password, "verify");
  try {
    await run();
    return verify.mock.calls.map(([, hash]) => Number(String(hash).slice(4, 6)));
  } finally {
    verify.mockRestore();
  }
}

test("an unknown name is checked against a hash of the highest cost loaded, also after a reload changes it", async () => {
  const cost = (password: string, c: number) => Bun.password.hash(password, { algorithm: "bcrypt", cost: c });
  const { users, path, reloads } = await usersWith([`alice:${await cost("alice-pw", 4)}`, `bob:${await cost("bob-pw", 6)}`]);
  expect(await costsChecked(() => users.verifyPassword("mallory", "guess"))).toEqual([6]);
  expect(await costsChecked(() => users.verifyPassword("bob", "guess"))).toEqual([6]);

  writeFileSync(path, `alice:${await cost("alice-pw", 7)}\n`);
  await eventually(() => reloads.length === 2);
  expect(await costsChecked(() => users.verifyPassword("mallory", "guess"))).toEqual([7]);
  expect(await users.verifyPassword("mallory", "guess")).toBe(false);
});

/** An htpasswd file with bcrypt entries, as `htpasswd -B` writes them (`$2y$`). */
export async function htpasswdLine(user: string, password: string): Promise<string> {
  const hash = await Bun.password.hash(password, { algorithm: "bcrypt", cost: 4 });
  return `${user}:${hash.replace(/^\$2[ab]\$/, "$2y$")}\n`;
}

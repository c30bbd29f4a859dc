/**
 * `docxy prewarm IMAGE [--platform linux/amd64,...] [--url URL] [--token TOKEN]`:
 * asks a running docxy (admin API) to pull an image into its cache and shows
 * the progress — a single updating line on a terminal, one line per step
 * otherwise (logs, CI). The token defaults to DOCXY_ADMIN_TOKEN.
 * `docxy prewarm --file FILE` runs a list instead (prewarm-file.ts).
 *
 * Tested through the binary against a running docxy: tests/integration/cli/commands.test.ts.
 */
import { UsageError } from "./args";
import { prewarmFile } from "./prewarm-file";

export async function prewarmCommand(args: string[], env: Record<string, string | undefined>): Promise<number> {
  let image: string | undefined;
  let file: string | undefined;
  let platforms: string[] | undefined;
  let url = env.DOCXY_URL ?? "http://127.0.0.1:5000";
  let token = env.DOCXY_ADMIN_TOKEN ?? "";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = () => {
      const v = args[++i];
      if (!v) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === "--platform") platforms = value().split(",").map((p) => p.trim()).filter(Boolean);
    else if (arg === "--file") file = value();
    else if (arg === "--url") url = value();
    else if (arg === "--token") token = value();
    else if (!arg.startsWith("-") && image === undefined) image = arg;
    else throw new UsageError(`unknown option ${arg}`);
  }
  if (file !== undefined) {
    if (image !== undefined || platforms !== undefined) throw new UsageError("--file takes the images and platforms from the file: give no IMAGE or --platform");
    return prewarmFile(file, url.replace(/\/+$/, ""), token);
  }
  if (!image) throw new UsageError("prewarm needs an image, e.g. docxy prewarm alpine:3.20 --platform linux/amd64");

  const response = await fetch(`${url.replace(/\/+$/, "")}/admin/prewarm`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ image, platforms }),
  });
  if (!response.ok || !response.body) {
    process.stderr.write(`docxy prewarm: ${url} answered ${response.status}: ${await response.text()}\n`);
    return 1;
  }
  const tty = process.stdout.isTTY;
  let steps = 0;
  let bytes = 0;
  let pending = "";
  for await (const chunk of response.body) {
    pending += new TextDecoder().decode(chunk);
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const step = JSON.parse(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      if (step.done === false) {
        process.stdout.write(`${tty ? "\n" : ""}docxy prewarm: ${step.error}\n`);
        return 1;
      }
      if (step.done) {
        process.stdout.write(`${tty ? "\r\x1b[K" : ""}${image}: ${steps} items, ${(bytes / 1024 / 1024).toFixed(1)} MiB in the cache\n`);
        return 0;
      }
      steps++;
      bytes += step.bytes;
      const line = `${step.kind} ${step.digest.slice(0, 19)} ${(step.bytes / 1024 / 1024).toFixed(1)} MiB ${step.cache}`;
      process.stdout.write(tty ? `\r\x1b[K[${steps}] ${line}` : `${line}\n`);
    }
  }
  process.stderr.write("docxy prewarm: the connection ended before the summary\n");
  return 1;
}

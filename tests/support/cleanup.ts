// Removing temp dirs when the test process ends, however it ends. `process.on("exit")` is not
// enough: under `bun test` exit handlers do not run at all (verified on Bun 1.4.5), and nothing
// runs on SIGKILL. So a small shell "janitor" child reads paths from a pipe and deletes them
// all when the pipe closes, which the kernel does when this process dies.
import type { FileSink, Subprocess } from "bun";

let janitor: Subprocess<"pipe", "ignore", "ignore"> | undefined;

const SCRIPT = 'while IFS= read -r dir; do set -- "$@" "$dir"; done; rm -rf -- "$@"';

/** Delete `path` (recursively) once this process has exited. Deleting it earlier is fine. */
export function removeAtExit(path: string): void {
  if (!janitor) {
    janitor = Bun.spawn(["sh", "-c", SCRIPT, "docxy-janitor"], { stdin: "pipe", stdout: "ignore", stderr: "ignore" });
    janitor.unref(); // never keeps the test run alive
  }
  const stdin: FileSink = janitor.stdin;
  stdin.write(`${path}\n`);
  stdin.flush();
}

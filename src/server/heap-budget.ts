/**
 * Gives JavaScriptCore a RAM size to plan its heap by, before the server
 * starts, by re-executing docxy once with `BUN_JSC_forceRAMSize` set.
 *
 * Why: JSC sizes its collection cycles by the machine's RAM, and what a
 * cold fill leaves behind (every chunk of an upstream body is a new buffer,
 * garbage once it is written and sent) waits for the next cycle. On the
 * bench machine (24 GiB) a cold fill followed by 64 slow clients peaked at
 * 262–280 MB; planned as for 1 GiB it peaked at 166 MB, at the same cold
 * throughput (BENCHMARKS.md, issue 17). The variable is Bun's counterpart of
 * Node's `--max-old-space-size` (oven-sh/bun#6548), though a plan rather
 * than a cap: the heap still grows past it when it must. Other levers were
 * measured and dropped: `--smol` 237 MB; a forced collection every 32 MiB of
 * a fill 157 MB but half the throughput; eden collections nothing.
 *
 * Why a re-exec: a JSC option is read once, when the VM starts, and a
 * compiled executable can carry arguments (`--compile-exec-argv`) but no
 * environment. `execve` keeps the process id, so systemd, a container
 * runtime and whoever sends signals still see one process; it happens
 * before any file or socket is opened. An operator's own
 * `BUN_JSC_forceRAMSize` is left alone, and machines with no more than the
 * budget need nothing.
 *
 * Tested through the binary: tests/integration/server/heap-budget.test.ts.
 */
import { totalmem } from "node:os";

export const HEAP_PLAN_BYTES = 1024 * 1024 * 1024;
const VARIABLE = "BUN_JSC_forceRAMSize";

/** Re-executes the process with the heap plan set, when it should; returns only when it does not. */
export function planHeap(env: Record<string, string | undefined> = process.env): void {
  if (env[VARIABLE] !== undefined) return;
  const ram = Math.min(totalmem(), process.constrainedMemory() || Infinity);
  if (ram <= HEAP_PLAN_BYTES) return;
  // A compiled binary's argv[1] is its embedded entry (/$bunfs/root/...), which Bun puts back
  // itself; under `bun src/main.ts` argv[1] is the script, which must be passed on.
  const compiled = process.argv[1]?.startsWith("/$bunfs/") ?? false;
  const args = [process.execPath, ...process.argv.slice(compiled ? 2 : 1)];
  try {
    process.execve!(process.execPath, args, { ...env, [VARIABLE]: String(HEAP_PLAN_BYTES) });
  } catch {
    // A sandbox that forbids execve: the server runs as it would have without the plan.
  }
}

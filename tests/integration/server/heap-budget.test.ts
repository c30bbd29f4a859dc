/**
 * server/heap-budget.ts through the binary: the server re-executes itself
 * once, in the same process, with JavaScriptCore's RAM plan set, and leaves
 * an operator's own value alone. The memory it saves is measured by the
 * benchmark (scenario 5), not here.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { HEAP_PLAN_BYTES } from "../../../src/server/heap-budget";
import { startDocxy } from "../../support/docxy-process";

/** The environment of a running process, as the kernel holds it. */
const environOf = (pid: number) => new Map(readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));

test("the server runs with the heap planned for 1 GiB, in the process that was started, and serves", async () => {
  const d = await startDocxy();
  try {
    // The process spawned is the one serving (execve keeps the pid), now with the plan set.
    // (A machine with no more RAM than the plan needs none.)
    expect(environOf(d.pid).get("BUN_JSC_forceRAMSize")).toBe(totalmem() > HEAP_PLAN_BYTES ? String(HEAP_PLAN_BYTES) : undefined);
    expect(readFileSync(`/proc/${d.pid}/cmdline`, "latin1").split("\0").filter(Boolean).slice(1)).toEqual(["--bind", "127.0.0.1", "--http-port", "0"]);
    expect((await fetch(`${d.url}/v2/`)).status).toBe(401);
    expect(d.log().match(/docxy started/g)).toHaveLength(1);
  } finally {
    await d.stop();
  }
});

test("an operator's own BUN_JSC_forceRAMSize is kept", async () => {
  const d = await startDocxy({ env: { BUN_JSC_forceRAMSize: String(4 * HEAP_PLAN_BYTES) } });
  try {
    expect(environOf(d.pid).get("BUN_JSC_forceRAMSize")).toBe(String(4 * HEAP_PLAN_BYTES));
    expect((await fetch(`${d.url}/health`)).status).toBe(200);
  } finally {
    await d.stop();
  }
});

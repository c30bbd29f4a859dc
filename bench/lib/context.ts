import { $ } from "bun";
import type { Row } from "./stats";
import type { World } from "./setup";

export interface Settings {
  quick: boolean;
  /** repetitions of each measurement (alternating A/B) */
  reps: number;
  /** size of the big blob's content, bytes */
  bigBytes: number;
  /** seconds of each load-generator run (manifest HEAD/GET) */
  loadSeconds: number;
  /** seconds the 64 slow clients read */
  slowSeconds: number;
  /** content bytes of the blob behind the WAN-rate CDN (scenario 3b) */
  wanBytes: number;
  /** bytes/s of each download from the WAN-rate CDN */
  wanRate: number;
  /** concurrent cold pulls in scenario 3 */
  concurrent: number;
  /** slow clients in scenario 5 */
  slowClients: number;
  /** seconds of mixed load in the soak (8) */
  soakSeconds: number;
}

export interface Context {
  world: World;
  settings: Settings;
  log(message: string): void;
}

export interface Scenario {
  id: string;
  title: string;
  run(ctx: Context): Promise<Row[]>;
}

/** Flush dirty pages (a previous run's cache writes) so their writeback does not land in the next timed run. */
export async function settle(): Promise<void> {
  await $`sync`.quiet().nothrow();
}

export const MB = 1e6;

/**
 * The coordination (coordination.ts) of a single node, in memory: a fill
 * is claimed from the moment its upstream request starts, so that requests
 * arriving during its round trips join it instead of starting their own
 * (COALESCED), until it settles. Tests: tests/cache/local-coordination.test.ts.
 */
import type { ClaimResult, Coordination, FillInProgress } from "./coordination";

export class LocalCoordination implements Coordination {
  private readonly fills = new Map<string, Promise<FillInProgress | undefined>>();
  private readonly held = new Set<string>();

  get fillsInProgress(): number {
    return this.fills.size;
  }

  join(digest: string): Promise<FillInProgress | undefined> | undefined {
    return this.fills.get(digest);
  }

  isFilling(digest: string): boolean {
    return this.fills.has(digest);
  }

  /** The entry is made (or found) before anything awaits, so claims made at the same time see it. */
  async claim(digest: string): Promise<ClaimResult> {
    const pending = this.fills.get(digest);
    if (pending) return { joined: await pending };
    let settle!: (fill: FillInProgress | undefined) => void;
    const fill = new Promise<FillInProgress | undefined>((resolve) => (settle = resolve));
    this.fills.set(digest, fill);
    const release = () => {
      if (this.fills.get(digest) === fill) this.fills.delete(digest);
      settle(undefined); // nobody waits forever on a claim that ended (a no-op once started)
    };
    return {
      claim: {
        started: (started) => {
          settle(started);
          if (!started) release();
        },
        release,
      },
    };
  }

  async exclusive<T>(name: string, task: () => Promise<T>): Promise<T | undefined> {
    if (this.held.has(name)) return undefined;
    this.held.add(name);
    try {
      return await task();
    } finally {
      this.held.delete(name);
    }
  }
}

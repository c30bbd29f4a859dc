/**
 * A job that runs once at a time in this process, for the evictors
 * (eviction.ts, fleet/fleet-eviction.ts): calls made while a run is under way
 * get that run's result, and one more run follows it, since what arrived
 * meanwhile (a commit pushing the cache over its size) may need it.
 * Tested through tests/cache/eviction.test.ts.
 */
export class CoalescedRuns<T> {
  private running: Promise<T> | undefined;
  private again = false;

  constructor(private readonly job: () => Promise<T>) {}

  run(): Promise<T> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.job().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        void this.run();
      }
    });
    return this.running;
  }
}

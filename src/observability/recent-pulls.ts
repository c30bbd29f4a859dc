/** The last manifest pulls, for the status page (kept in memory, bounded). */
export interface RecentPull {
  time: string;
  client: string;
  registry: string;
  repository: string;
  reference: string;
  status: number;
  cache: string;
}

export class RecentPulls {
  private readonly items: RecentPull[] = [];

  constructor(private readonly capacity = 20) {}

  add(pull: RecentPull): void {
    this.items.unshift(pull);
    if (this.items.length > this.capacity) this.items.pop();
  }

  list(): readonly RecentPull[] {
    return this.items;
  }
}

/**
 * The last `limit` values added, oldest forgotten first: what a process
 * remembers of recent events (rounds that ended) without growing for ever.
 */
export class RecentSet<T> {
  private readonly values = new Set<T>();

  constructor(private readonly limit: number) {}

  add(value: T): void {
    this.values.add(value);
    if (this.values.size > this.limit) this.values.delete(this.values.values().next().value as T);
  }

  has(value: T): boolean {
    return this.values.has(value);
  }
}

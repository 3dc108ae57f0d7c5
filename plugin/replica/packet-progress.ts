/** Statements counted within one part before the next part's count takes over. */
const PER_PART = 1_000_000;

/**
 * How far an applier got into a large packet, for a round whose prepare waits
 * parked while the packet's parts stream into the replica's transaction. Per
 * round (`scope`, its gid) the count grows only with work that round has not
 * seen done: parts past the furthest one applied since it started counting,
 * and the replica's answers while such a part runs. A transaction idling at a
 * part that does not come (its keepalives answer), or parts applied again
 * after a restart rolled the packet back within the same round, leave it
 * where it was, so that round still ends at its deadline; the next round
 * counts the packet's apply afresh.
 */
export class PacketProgress {
  /** The packet being applied, and how many of its parts the open transaction holds. */
  private version = -1;
  private current = 0;
  /** The round counting, and the furthest part count it has seen. */
  private scope: string | null = null;
  private furthest = 0;
  private running: { version: number; index: number; heardAt: number } | null = null;

  constructor(private readonly heard: () => number) {}

  /** Part `index` of `version` is sent to the replica (index 0 opens the packet afresh). */
  started(version: number, index: number): void {
    if (version !== this.version || index === 0) {
      this.version = version;
      this.current = 0;
    }
    this.running = { version, index, heardAt: this.heard() };
  }

  /**
   * The packet's transaction ended (committed, prepared or rolled back), or
   * the applier starts afresh: until a part is sent again it is on no packet,
   * so a round that starts counting meanwhile counts the re-apply from 0.
   */
  closed(): void {
    this.version = -1;
    this.current = 0;
    this.running = null;
  }

  /** The running part ended: applied (`done`), or failed. */
  ended(done: boolean): void {
    const part = this.running;
    this.running = null;
    if (!done || part?.version !== this.version) return;
    this.current = part.index + 1;
    this.furthest = Math.max(this.furthest, this.current);
  }

  /** Round `scope`'s count for packet `version`; -1 when the applier is not on that packet. */
  of(version: number, scope: string): number {
    if (version !== this.version) return -1;
    if (scope !== this.scope) {
      this.scope = scope;
      this.furthest = this.current;
    }
    const part = this.running;
    const fresh =
      part?.version === version && part.index >= this.furthest ? this.heard() - part.heardAt : 0;
    return this.furthest * PER_PART + Math.min(Math.max(fresh, 0), PER_PART - 1);
  }
}

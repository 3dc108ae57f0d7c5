import type { PacketWindow } from '../primary/packet-window.js';
import { decideOnePhase, type Lsn, type PacketPart } from '../protocol/index.js';
import { ApplyError } from './apply-error.js';

/** A replica's durable position. */
export interface ReplicaPosition {
  readonly version: number;
  readonly lsn: Lsn;
}

/** The replica side of the apply path (the Postgres adapter implements it). */
export interface ReplicaTarget {
  readonly node: string;
  /** Updates and deletes of rows missing on the replica that `conflicts: "overwrite"` skipped, so far. */
  readonly ignoredMissingRows: number;
  open(): Promise<ReplicaPosition>;
  /** Applies whole packets as one transaction that ends by storing `position`. */
  applyBatch(
    packets: ReadonlyArray<{ changes: PacketPart['changes']; version: number; lsn: Lsn }>,
    position: ReplicaPosition,
    commitTime: string,
  ): Promise<void>;
  /** Streams a large packet through an open transaction: begin, apply its parts, commit. */
  begin(): void;
  apply(changes: PacketPart['changes'], version: number, lsn: Lsn): Promise<void>;
  commit(position: ReplicaPosition, commitTime: string): Promise<void>;
  rollback(): Promise<void>;
  close(): Promise<void>;
}

/** States reported by `status` (DESIGN.md / issue: streaming, catching-up, halted, stale, resyncing). */
export type ReplicaState =
  | 'starting'
  | 'streaming'
  | 'catching-up'
  | 'halted'
  | 'stale'
  | 'resyncing';

/** Tuning of an agent. */
export interface ReplicaAgentOptions {
  /** Most row changes in one replica transaction. */
  readonly batchRows: number;
  /** Longest a batch waits for more packets (ms). */
  readonly batchMs: number;
  /** First and longest retry delay after a failure (ms). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

/** What an agent tells the sidecar. */
export interface ReplicaAgentEvents {
  /** A batch committed: the replica is durably at `position`. */
  applied(agent: ReplicaAgent, position: ReplicaPosition, packets: number, rows: number): void;
  /** The state or the last error changed. */
  stateChanged(agent: ReplicaAgent): void;
  /** The packet after `version` is no longer in the window: re-read the stream from there. */
  needsRewind(agent: ReplicaAgent, position: ReplicaPosition): void;
  /** Something an operator may want in the log (deltas, duplicates skipped). */
  note(agent: ReplicaAgent, message: string, fields: Record<string, unknown>): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Applies the stream to one replica with the one-phase rule: the next packet is
 * applied, a duplicate is skipped, a gap is closed from the window (the delta)
 * or by rewinding the stream. Consecutive packets share one replica transaction
 * (bounded by rows and milliseconds) that also stores the last `(version, lsn)`.
 * A failure halts this replica alone; it retries with backoff and resumes from
 * its durable position once the cause is gone.
 */
export class ReplicaAgent {
  state: ReplicaState = 'starting';
  /** The last failure while halted; cleared once applying works again. */
  lastError: ApplyError | null = null;
  /** Durable position, known once the replica was reached. */
  position: ReplicaPosition | null = null;
  packetsApplied = 0;
  rowsApplied = 0;
  applyErrors = 0;
  /** Packets skipped because the replica already had them (after restarts and rewinds). */
  duplicatesSkipped = 0;
  /** Updates and deletes of missing rows skipped under `conflicts: "overwrite"`. */
  ignoredMissingRows = 0;
  private stopping = false;
  private wakeStop: (() => void) | null = null;

  constructor(
    readonly name: string,
    private readonly target: ReplicaTarget,
    private readonly window: PacketWindow,
    private readonly options: ReplicaAgentOptions,
    private readonly events: ReplicaAgentEvents,
  ) {}

  /** Runs until {@link stop}; never throws (failures halt and retry). Can run again after it stopped. */
  async run(): Promise<void> {
    this.stopping = false;
    let finished: () => void = () => undefined;
    this.finished = new Promise((resolve) => {
      finished = resolve;
    });
    try {
      await this.runLoop();
    } finally {
      finished();
    }
  }

  /** Resolves once a stopped agent's loop has ended (its connection closed). */
  async waitStopped(): Promise<void> {
    await this.finished;
  }

  private finished: Promise<void> = Promise.resolve();

  private async runLoop(): Promise<void> {
    let delay = this.options.retryInitialMs;
    while (!this.stopping) {
      try {
        this.position = await this.target.open();
        await this.applyLoop(() => {
          delay = this.options.retryInitialMs;
        });
      } catch (error) {
        await this.target.rollback().catch(() => undefined);
        await this.target.close().catch(() => undefined);
        if (this.stopping) break;
        this.window.setCursor(this.name, null);
        this.applyErrors++;
        this.lastError =
          error instanceof ApplyError
            ? error
            : new ApplyError({
                node: this.name,
                kind: 'other',
                version: (this.position?.version ?? 0) + 1,
                problem: (error as Error)?.message ?? String(error),
                fix: 'see the message; lockstep retries by itself',
                cause: error,
              });
        this.setState('halted');
        await Promise.race([
          sleep(delay),
          new Promise<void>((resolve) => (this.wakeStop = resolve)),
        ]);
        delay = Math.min(delay * 2, this.options.retryMaxMs);
      }
    }
    this.window.setCursor(this.name, null);
    await this.target.close();
  }

  /** Asks the agent to finish: an open batch is rolled back, nothing half-done is kept. */
  stop(): void {
    this.stopping = true;
    this.wakeStop?.();
  }

  private setState(state: ReplicaState): void {
    if (this.state === state && state !== 'halted') return;
    this.state = state;
    this.events.stateChanged(this);
  }

  private async applyLoop(onProgress: () => void): Promise<void> {
    let position = this.position as ReplicaPosition;
    let epoch = this.window.epoch;
    let cursor = this.locate(position);
    this.setState('catching-up');
    this.noteDelta(position);
    let skippedSinceStreaming = 0;
    const reportSkipped = () => {
      if (skippedSinceStreaming === 0) return;
      this.events.note(
        this,
        `replica ${this.name} skipped ${skippedSinceStreaming} duplicate packet(s) it already had`,
        {
          duplicates: skippedSinceStreaming,
          version: position.version,
        },
      );
      skippedSinceStreaming = 0;
    };
    // Whole packets waiting to be applied together, and when the first of them arrived.
    let buffered: PacketPart[] = [];
    let bufferedRows = 0;
    let bufferedSince = 0;
    // A large packet streaming through an open replica transaction.
    let open: { version: number; rows: number } | null = null;

    let ignoredBefore = this.target.ignoredMissingRows;
    const applied = (next: ReplicaPosition, packets: number, rows: number) => {
      this.events.applied(this, next, packets, rows);
      const ignored = this.target.ignoredMissingRows - ignoredBefore;
      if (ignored > 0) {
        ignoredBefore = this.target.ignoredMissingRows;
        this.ignoredMissingRows += ignored;
        this.events.note(
          this,
          `replica ${this.name} skipped ${ignored} update(s)/delete(s) of rows it does not have (conflicts: overwrite) up to version ${next.version}`,
          { ignored, total: this.ignoredMissingRows, version: next.version },
        );
      }
      this.packetsApplied += packets;
      this.rowsApplied += rows;
      position = next;
      this.position = next;
      if (this.lastError) {
        this.lastError = null;
        this.events.stateChanged(this);
      }
      onProgress();
    };
    const flush = async () => {
      if (buffered.length === 0) return;
      const last = (buffered[buffered.length - 1] as PacketPart).header;
      const next = { version: last.version, lsn: last.lsn };
      await this.target.applyBatch(
        buffered.map((p) => ({ changes: p.changes, version: p.header.version, lsn: p.header.lsn })),
        next,
        last.commitTime,
      );
      applied(next, buffered.length, bufferedRows);
      buffered = [];
      bufferedRows = 0;
    };
    /** The newest version this replica has or is about to commit. */
    const reached = () =>
      buffered.length
        ? (buffered[buffered.length - 1] as PacketPart).header.version
        : position.version;

    while (!this.stopping) {
      if (this.window.epoch !== epoch) {
        // The stream restarted: whatever is not committed will come again.
        if (open) await this.target.rollback();
        open = null;
        buffered = [];
        bufferedRows = 0;
        epoch = this.window.epoch;
        cursor = this.locate(position);
        this.noteDelta(position);
      }
      if (cursor === null) {
        this.events.needsRewind(this, position);
        await this.window.changed();
        if (this.window.epoch === epoch) continue;
        epoch = this.window.epoch;
        cursor = this.locate(position);
        continue;
      }
      const part = this.window.at(cursor);
      if (!part) {
        if (cursor < this.window.start) {
          // Parts left the window under a stale cursor: commit what is whole, then find our place again.
          await flush();
          if (open) await this.target.rollback();
          open = null;
          cursor = this.locate(position);
          continue;
        }
        if (buffered.length > 0) {
          // Nothing more right now: give the batch until batchMs to grow, then commit it.
          const left = bufferedSince + this.options.batchMs - Date.now();
          if (left > 0) await Promise.race([this.window.changed(), sleep(left)]);
          if (!this.window.at(cursor)) await flush();
          continue;
        }
        if (!open) {
          this.setState('streaming');
          // Once the stream has come back up to this replica's own version, the run of duplicates is over.
          if ((this.window.newestVersion ?? 0) >= position.version) reportSkipped();
        }
        await this.window.changed();
        continue;
      }
      const { header } = part;
      if (open) {
        // Inside a large packet: its parts follow one another.
        if (header.version !== open.version) {
          await this.target.rollback();
          open = null;
          cursor = this.locate(position);
          continue;
        }
        await this.target.apply(part.changes, header.version, header.lsn);
        open.rows += part.changes.length;
        cursor++;
        this.window.setCursor(this.name, cursor);
        if (part.final) {
          const next = { version: header.version, lsn: header.lsn };
          await this.target.commit(next, header.commitTime);
          applied(next, 1, open.rows);
          open = null;
        }
        continue;
      }
      const decision = decideOnePhase(reached(), header.version);
      if (decision.action === 'skip-duplicate') {
        if (part.final) {
          this.duplicatesSkipped++;
          skippedSinceStreaming++;
        }
        cursor++;
        this.window.setCursor(this.name, cursor);
        continue;
      }
      if (decision.action === 'request-delta' || part.index !== 0) {
        // The missing packets are earlier in the window or gone: commit what is whole, then locate again.
        await flush();
        cursor = this.locate(position);
        continue;
      }
      reportSkipped();
      if (this.state !== 'streaming') this.setState('catching-up');
      cursor++;
      this.window.setCursor(this.name, cursor);
      if (part.final) {
        if (buffered.length === 0) bufferedSince = Date.now();
        buffered.push(part);
        bufferedRows += part.changes.length;
        if (
          bufferedRows >= this.options.batchRows ||
          Date.now() - bufferedSince >= this.options.batchMs
        )
          await flush();
      } else {
        // A large packet: what is buffered commits first, then the packet streams through its own transaction.
        await flush();
        this.target.begin();
        await this.target.apply(part.changes, header.version, header.lsn);
        open = { version: header.version, rows: part.changes.length };
      }
    }
    if (open) await this.target.rollback();
  }

  /** Logs the delta a replica behind the stream's head is about to receive from memory. */
  private noteDelta(position: ReplicaPosition): void {
    const head = this.window.newestVersion;
    const seq = this.window.locate(position.version);
    if (head !== null && head > position.version && seq !== null) {
      this.events.note(
        this,
        `replica ${this.name} is behind: delta ${position.version + 1}..${head} served from memory`,
        {
          from: position.version + 1,
          to: head,
        },
      );
    }
  }

  /** The window position after `position`, registering the cursor; null when a rewind is needed. */
  private locate(position: ReplicaPosition): number | null {
    const seq = this.window.locate(position.version);
    this.window.setCursor(this.name, seq);
    return seq;
  }
}

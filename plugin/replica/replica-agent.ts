import type {
  ParticipantOutcome,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from '../coordinator/round-participant.js';
import { ApplyError } from '../ports/apply-error.js';
import type { PacketWindow } from '../primary/packet-window.js';
import { compareLsn, decideOnePhase, type Lsn, type PacketPart } from '../protocol/index.js';

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
  /** The identity of the database last connected to (null before), reported in status. */
  readonly databaseId?: string | null;
  open(): Promise<ReplicaPosition>;
  /**
   * Applies whole packets as one transaction that ends by storing `position`;
   * committed, or prepared as `prepareAs` (a two-phase round's gid).
   */
  applyBatch(
    packets: ReadonlyArray<{ changes: PacketPart['changes']; version: number; lsn: Lsn }>,
    position: ReplicaPosition,
    commitTime: string,
    prepareAs?: string,
  ): Promise<void>;
  /**
   * Streams a large packet through an open transaction: begin (the replica
   * must hold version `from`: checked under a row lock, see `applyBatch`),
   * apply its parts, commit (or prepare).
   */
  begin(from: number): void;
  apply(changes: PacketPart['changes'], version: number, lsn: Lsn): Promise<void>;
  commit(position: ReplicaPosition, commitTime: string, prepareAs?: string): Promise<void>;
  /** Reads the durable position again. */
  position(): Promise<ReplicaPosition>;
  /** Stores a later LSN for the version held (an idle point of the stream): no data changes. */
  advance(position: ReplicaPosition): Promise<void>;
  rollback(): Promise<void>;
  close(): Promise<void>;
  /** Drops the connection at once, without waiting for the server (it stopped answering). */
  abort(): void;
}

/** States reported by `status` (DESIGN.md / issue: streaming, catching-up, halted, stale, resyncing). */
export type ReplicaState =
  | 'starting'
  | 'streaming'
  | 'catching-up'
  | 'halted'
  /** Stopped answering within the apply deadline: its connection was dropped; retried like halted. */
  | 'unresponsive'
  | 'stale'
  | 'resyncing';

/** Longest retry delay of a replica that has no position yet (waiting for `lockstep attach`), ms. */
const NOT_ATTACHED_RETRY_MS = 2_000;

/** States in which a replica is retrying after a failure. */
const FAILED: ReadonlySet<ReplicaState> = new Set(['halted', 'unresponsive']);

/** Tuning of an agent. */
export interface ReplicaAgentOptions {
  /** Most row changes in one replica transaction. */
  readonly batchRows: number;
  /** Longest a batch waits for more packets (ms). */
  readonly batchMs: number;
  /** First and longest retry delay after a failure (ms). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /**
   * Longest a replica may take to answer one step of the apply (connect,
   * a batch, a part of a large packet, a commit) before it counts as
   * unresponsive and its connection is dropped (ms).
   */
  readonly applyTimeoutMs: number;
}

/** What an agent tells the sidecar. */
export interface ReplicaAgentEvents {
  /** A batch committed: the replica is durably at `position`. */
  applied(agent: ReplicaAgent, position: ReplicaPosition, packets: number, rows: number): void;
  /** The state or the last error changed. */
  stateChanged(agent: ReplicaAgent): void;
  /** The packet after `version` is no longer in the window: re-read the stream from there. */
  needsRewind(agent: ReplicaAgent, position: ReplicaPosition): void;
  /** Whether the stream's two-phase round for `version` is committed (on its participants). */
  roundCommitted(version: number): boolean;
  /** Something an operator may want in the log (deltas, duplicates skipped). */
  note(agent: ReplicaAgent, message: string, fields: Record<string, unknown>): void;
  /** A batch or large packet took `seconds` to apply and commit; `commitTime` is its last commit on the primary. */
  timed?(agent: ReplicaAgent, seconds: number, commitTime: string): void;
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
export class ReplicaAgent implements RoundParticipant {
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
  /** A prepare the coordinator sent, waiting for the apply loop to reach the round's first packet. */
  private pendingPrepare: { request: PrepareRequest; resolve: (vote: Vote) => void } | null = null;
  /** The round this replica voted yes in, waiting for phase two. */
  private decisionWaiter: {
    gid: string;
    resolve: (outcome: ParticipantOutcome | null) => void;
  } | null = null;
  private deltaWaiters: Array<{
    version: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }> = [];
  /** Highest version a round committed on this replica (told by the coordinator after COMMIT PREPARED). */
  private committedThrough = 0;
  private gateSignal: (() => void) | null = null;
  /** Waiting out the backoff after a failure: it cannot take part in a round now. */
  private inBackoff = false;

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
        this.position = await this.guarded(this.target.open(), 0);
        // Reached again (or placed by attach at last): that error is over. Others last until an apply succeeds.
        const kind = this.lastError?.kind;
        if (
          kind === 'unreachable' ||
          kind === 'unresponsive' ||
          (kind === 'not-synced' && !this.lastError?.version)
        )
          this.lastError = null;
        await this.applyLoop(() => {
          delay = this.options.retryInitialMs;
        });
      } catch (error) {
        // The window is released first: a replica that hangs here pins nothing meanwhile.
        this.window.setCursor(this.name, null);
        await this.guarded(this.target.rollback(), 0).catch(() => undefined);
        await this.guarded(this.target.close(), 0).catch(() => undefined);
        if (this.stopping) break;
        this.applyErrors++;
        const previous = this.lastError;
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
        // Still waiting for lockstep attach: told once, not at every look.
        const unchanged =
          previous?.kind === 'not-synced' &&
          this.lastError.kind === 'not-synced' &&
          previous.message === this.lastError.message &&
          this.state === 'halted';
        if (!unchanged)
          this.setState(this.lastError.kind === 'unresponsive' ? 'unresponsive' : 'halted');
        this.inBackoff = true;
        await Promise.race([
          sleep(delay),
          new Promise<void>((resolve) => (this.wakeStop = resolve)),
        ]);
        this.inBackoff = false;
        // A replica waiting for lockstep attach is looked at often: it joins soon after attach placed it.
        const most = this.attached ? this.options.retryMaxMs : NOT_ATTACHED_RETRY_MS;
        delay = Math.min(delay * 2, Math.max(most, this.options.retryInitialMs));
      }
    }
    this.window.setCursor(this.name, null);
    await this.guarded(this.target.close(), 0).catch(() => undefined);
  }

  /**
   * Forgets what an earlier activation knew: the next run reads the durable
   * position again before anything uses it (a resume point taken from a
   * position remembered across a takeover could be long behind the replica,
   * and the stream would then number packets wrongly).
   */
  forget(): void {
    this.position = null;
    this.state = 'starting';
    this.committedThrough = 0;
  }

  /** Asks the agent to finish: an open batch is rolled back, nothing half-done is kept. */
  stop(): void {
    this.stopping = true;
    this.wakeStop?.();
    this.refuseWaiting('the sidecar is stopping');
    const waiter = this.decisionWaiter;
    this.decisionWaiter = null;
    waiter?.resolve(null);
    this.wakeGate();
  }

  private setState(state: ReplicaState): void {
    if (this.state === state && !FAILED.has(state)) return;
    // Retrying after a failure is still halted (or unresponsive), for status, until it applies again.
    if (
      FAILED.has(this.state) &&
      this.lastError &&
      (state === 'catching-up' || state === 'streaming')
    )
      return;
    this.state = state;
    if (FAILED.has(state))
      this.refuseWaiting(this.lastError?.message ?? `replica ${this.name} is ${state}`);
    this.events.stateChanged(this);
  }

  /**
   * Bounds one step of work on the replica: should it not settle within the
   * apply deadline, the connection is dropped (the step then fails at once)
   * and the replica counts as unresponsive — it stops pinning the window, and
   * a round waiting for its vote hears no at once instead of a timeout later.
   */
  private async guarded<T>(work: Promise<T>, version: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let expired = false;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        this.target.abort();
        reject(
          new ApplyError({
            node: this.name,
            kind: 'unresponsive',
            version,
            problem: `the replica did not answer within ${this.options.applyTimeoutMs} ms: its connection was dropped`,
            fix: 'check the replica server and the network to it (a frozen host, a full disk, a lock held for long); lockstep retries and catches up by itself',
          }),
        );
      }, this.options.applyTimeoutMs);
    });
    work.catch(() => undefined); // after the deadline, its failure is the dropped connection's
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
      if (expired) work.catch(() => undefined);
    }
  }

  /**
   * False once the replica was reached and found without a position in the
   * stream (`lockstep attach` has not placed it yet): it holds the slot, but
   * takes no part in rounds — it will meet their packets in the stream.
   */
  get attached(): boolean {
    return this.position !== null || this.lastError?.kind !== 'not-synced';
  }

  /** The identity of the database this agent applies to (null until it connected once). */
  get databaseId(): string | null {
    return this.target.databaseId ?? null;
  }

  /** The version this replica durably holds, when known. */
  get heldVersion(): number | null {
    return this.position?.version ?? null;
  }

  /**
   * *prepare*: `needs-update` when behind the round's first packet, `no` when
   * halted; otherwise the apply loop takes the request once it reaches that
   * packet and answers after PREPARE TRANSACTION (or with the reason it failed).
   */
  async prepare(request: PrepareRequest): Promise<Vote> {
    for (;;) {
      if (this.stopping) return { vote: 'no', reason: 'the sidecar is stopping' };
      if (this.inBackoff || (FAILED.has(this.state) && !this.position))
        return { vote: 'no', reason: this.lastError?.message ?? `replica ${this.name} is halted` };
      if (this.position) break;
      await sleep(50);
    }
    const at = (this.position as ReplicaPosition).version;
    if (at < request.from - 1) return { vote: 'needs-update', at };
    if (at >= request.from) {
      return {
        vote: 'no',
        reason: `replica ${this.name} already holds version ${at}, at or past the round's first version ${request.from}`,
      };
    }
    return new Promise<Vote>((resolve) => {
      this.pendingPrepare?.resolve({ vote: 'no', reason: 'superseded by a newer prepare' });
      this.pendingPrepare = { request, resolve };
      this.wakeGate();
    });
  }

  /** Resolves once the apply loop holds the version before the round (it fetches the delta itself). */
  delta(request: PrepareRequest): Promise<void> {
    if ((this.position?.version ?? -1) >= request.from - 1) return Promise.resolve();
    if (this.inBackoff || this.stopping)
      return Promise.reject(new Error(this.lastError?.message ?? `replica ${this.name} is halted`));
    return new Promise((resolve, reject) =>
      this.deltaWaiters.push({ version: request.from - 1, resolve, reject }),
    );
  }

  /** Phase two finished on this replica's node. */
  decided(request: PrepareRequest, outcome: ParticipantOutcome): void {
    if (outcome === 'committed')
      this.committedThrough = Math.max(this.committedThrough, request.to);
    if (this.decisionWaiter?.gid === request.gid) {
      const waiter = this.decisionWaiter;
      this.decisionWaiter = null;
      waiter.resolve(outcome);
    }
    this.wakeGate();
  }

  /** A round committed somewhere: a replica waiting at a gate looks again. */
  nudge(): void {
    this.wakeGate();
  }

  private wakeGate(): void {
    const wake = this.gateSignal;
    this.gateSignal = null;
    wake?.();
  }

  /** Answers a waiting prepare and delta requests: this replica cannot take part now. */
  private refuseWaiting(reason: string): void {
    const pending = this.pendingPrepare;
    this.pendingPrepare = null;
    pending?.resolve({ vote: 'no', reason });
    const waiters = this.deltaWaiters;
    this.deltaWaiters = [];
    for (const waiter of waiters) waiter.reject(new Error(reason));
  }

  private settleDeltas(): void {
    const at = this.position?.version ?? -1;
    this.deltaWaiters = this.deltaWaiters.filter((waiter) => {
      if (at < waiter.version) return true;
      waiter.resolve();
      return false;
    });
  }

  /**
   * Waits at two-phase packet `version` for the coordinator: its prepare, word
   * that the round committed here without this loop's vote (a restart in
   * between), or a restarted stream. Null when stopping.
   */
  private async atGate(
    version: number,
    epoch: number,
  ): Promise<
    | { kind: 'prepare'; request: PrepareRequest; resolve: (vote: Vote) => void }
    | { kind: 'moved' }
    | { kind: 'restream' }
    /** The round for this version committed on the other replicas while this one was not a participant (resyncing): its packet is applied as any other. */
    | { kind: 'decided-without-me' }
    | null
  > {
    for (;;) {
      if (this.stopping) return null;
      if (this.window.epoch !== epoch) return { kind: 'restream' };
      const pending = this.pendingPrepare;
      if (pending) {
        this.pendingPrepare = null;
        if (pending.request.from === version) return { kind: 'prepare', ...pending };
        pending.resolve({
          vote: 'no',
          reason: `replica ${this.name} waits at version ${version}, not ${pending.request.from}`,
        });
        continue;
      }
      if (this.committedThrough >= version) return { kind: 'moved' };
      // A participant of a committed round was committed before the round counted as done.
      if (this.events.roundCommitted(version)) return { kind: 'decided-without-me' };
      await new Promise<void>((resolve) => {
        this.gateSignal = resolve;
        void this.window.changed().then(resolve);
      });
    }
  }

  /** Registers for the round's outcome before the vote is given, so a quick decision is not missed. */
  private awaitDecision(gid: string): Promise<ParticipantOutcome | null> {
    return new Promise((resolve) => {
      this.decisionWaiter = { gid, resolve };
    });
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
    // One timer per batch for its batchMs, not one per wake-up while it waits.
    let batchNumber = 0;
    let deadline = null as { batch: number; passed: Promise<unknown> } | null;
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
      this.settleDeltas();
      if (this.lastError) {
        this.lastError = null;
        this.events.stateChanged(this);
        this.setState('catching-up');
      }
      onProgress();
    };
    const flush = async () => {
      if (buffered.length === 0) return;
      const last = (buffered[buffered.length - 1] as PacketPart).header;
      const next = { version: last.version, lsn: last.lsn };
      const began = performance.now();
      await this.guarded(
        this.target.applyBatch(
          buffered.map((p) => ({
            changes: p.changes,
            version: p.header.version,
            lsn: p.header.lsn,
          })),
          next,
          last.commitTime,
        ),
        next.version,
      );
      this.events.timed?.(this, (performance.now() - began) / 1000, last.commitTime);
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
        if (open) await this.guarded(this.target.rollback(), position.version);
        open = null;
        buffered = [];
        bufferedRows = 0;
        epoch = this.window.epoch;
        cursor = this.locate(position);
        // The restarted stream may already have re-sent packets this replica has: locating
        // passed over them, and they count as the duplicates they are.
        const passed = cursor === null ? 0 : this.window.packetsBetween(this.window.start, cursor);
        this.duplicatesSkipped += passed;
        skippedSinceStreaming += passed;
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
          if (open) await this.guarded(this.target.rollback(), position.version);
          open = null;
          cursor = this.locate(position);
          continue;
        }
        if (buffered.length > 0) {
          // Nothing more right now. Unless another replica ended the batch here already, give it
          // until batchMs to grow, then end it here for every replica (they batch alike).
          if (this.window.cutAfter(cursor - 1) === null) {
            const left = bufferedSince + this.options.batchMs - Date.now();
            if (left > 0) {
              if (deadline?.batch !== batchNumber)
                deadline = { batch: batchNumber, passed: sleep(left) };
              await Promise.race([this.window.changed(), deadline.passed]);
              continue;
            }
            this.window.cutNewest();
          }
          await flush();
          continue;
        }
        if (!open) {
          this.setState('streaming');
          // Once the stream has come back up to this replica's own version, the run of duplicates is over.
          if ((this.window.newestVersion ?? 0) >= position.version) reportSkipped();
          const idle = this.window.idlePoint;
          if (idle && idle.version === position.version && compareLsn(idle.lsn, position.lsn) > 0) {
            // Holding every packet up to an idle point: its LSN lets the slot release WAL of other tables.
            await this.guarded(this.target.advance(idle), idle.version);
            applied(idle, 0, 0);
            continue;
          }
        }
        await this.window.changed();
        continue;
      }
      const { header } = part;
      if (open) {
        // Inside a large packet: its parts follow one another.
        if (header.version !== open.version) {
          await this.guarded(this.target.rollback(), header.version);
          open = null;
          cursor = this.locate(position);
          continue;
        }
        await this.guarded(
          this.target.apply(part.changes, header.version, header.lsn),
          header.version,
        );
        open.rows += part.changes.length;
        cursor++;
        this.window.setCursor(this.name, cursor);
        if (part.final?.phase === 'two') {
          // A large two-phase packet: the open transaction is prepared for its round.
          const gate = await this.atGate(header.version, epoch);
          if (!gate) break;
          if (gate.kind === 'restream') continue;
          const rows = open.rows;
          if (gate.kind === 'decided-without-me') {
            const next = { version: header.version, lsn: header.lsn };
            await this.guarded(this.target.commit(next, header.commitTime), header.version);
            applied(next, 1, rows);
            open = null;
            continue;
          }
          if (gate.kind === 'moved' || gate.request.to !== header.version) {
            if (gate.kind === 'prepare')
              gate.resolve({
                vote: 'no',
                reason: `version ${header.version} needs a round of its own`,
              });
            await this.guarded(this.target.rollback(), header.version);
            open = null;
            if (gate.kind === 'moved')
              applied(await this.guarded(this.target.position(), header.version), 0, 0);
            cursor = this.locate(position);
            continue;
          }
          open = null;
          const next = { version: header.version, lsn: header.lsn };
          const outcome = await this.vote(gate.request, gate.resolve, () =>
            this.guarded(
              this.target.commit(next, header.commitTime, gate.request.gid),
              header.version,
            ),
          );
          if (outcome === null) break;
          if (outcome === 'committed') applied(next, 1, rows);
          else cursor = this.locate(position);
        } else if (part.final) {
          const next = { version: header.version, lsn: header.lsn };
          await this.guarded(this.target.commit(next, header.commitTime), header.version);
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
      let gate: Awaited<ReturnType<ReplicaAgent['atGate']>> | undefined;
      if (part.final?.phase === 'two') {
        // The one-phase batch ends before a two-phase packet; nothing after it is applied until it is decided.
        await flush();
        gate = await this.atGate(header.version, epoch);
        if (!gate) break;
        if (gate.kind === 'restream') continue;
        if (gate.kind === 'moved') {
          applied(await this.guarded(this.target.position(), header.version), 0, 0);
          cursor = this.locate(position);
          continue;
        }
      }
      if (gate?.kind === 'prepare') {
        const round = await this.roundPackets(gate.request, cursor, epoch);
        if (typeof round === 'string') {
          gate.resolve({ vote: 'no', reason: round });
          cursor = this.locate(position);
          continue;
        }
        const last = (round[round.length - 1] as PacketPart).header;
        const next = { version: last.version, lsn: last.lsn };
        const outcome = await this.vote(gate.request, gate.resolve, () =>
          this.guarded(
            this.target.applyBatch(
              round.map((p) => ({
                changes: p.changes,
                version: p.header.version,
                lsn: p.header.lsn,
              })),
              next,
              last.commitTime,
              gate.request.gid,
            ),
            next.version,
          ),
        );
        if (outcome === null) break;
        if (outcome === 'committed') {
          applied(
            next,
            round.length,
            round.reduce((sum, p) => sum + p.changes.length, 0),
          );
          cursor += round.length;
          this.window.setCursor(this.name, cursor);
        } else cursor = this.locate(position);
        continue;
      }
      cursor++;
      this.window.setCursor(this.name, cursor);
      if (part.final) {
        if (buffered.length === 0) {
          bufferedSince = Date.now();
          batchNumber++;
        }
        buffered.push(part);
        bufferedRows += part.changes.length;
        // Batches end where the window cuts them, so replicas in step apply the same ones. A
        // replica that is behind (more is already here) ignores cuts made for time and gathers more.
        const cut = this.window.cutAfter(cursor - 1);
        if (
          bufferedRows >= this.options.batchRows ||
          cut === 'rows' ||
          (cut === 'time' && !this.window.at(cursor))
        )
          await flush();
      } else {
        // A large packet: what is buffered commits first, then the packet streams through its own transaction.
        await flush();
        this.target.begin(position.version);
        await this.guarded(
          this.target.apply(part.changes, header.version, header.lsn),
          header.version,
        );
        open = { version: header.version, rows: part.changes.length };
      }
    }
    if (open) await this.guarded(this.target.rollback(), position.version);
  }

  /**
   * Prepares a round's packets (`prepare` ends the transaction with PREPARE
   * TRANSACTION), votes, and waits for phase two. A failure votes no with the
   * error's text (node, table, fix) and halts this replica like any apply
   * failure. Null when stopping.
   */
  private async vote(
    request: PrepareRequest,
    answer: (vote: Vote) => void,
    prepare: () => Promise<void>,
  ): Promise<ParticipantOutcome | null> {
    try {
      await prepare();
    } catch (error) {
      answer({ vote: 'no', reason: (error as Error)?.message ?? String(error) });
      throw error;
    }
    const outcome = this.awaitDecision(request.gid);
    answer({ vote: 'yes' });
    return outcome;
  }

  /** The round's whole packets, from the window at `cursor` on (waiting for them to arrive); a reason when they do not fit. */
  private async roundPackets(
    request: PrepareRequest,
    cursor: number,
    epoch: number,
  ): Promise<PacketPart[] | string> {
    const packets: PacketPart[] = [];
    for (let seq = cursor; packets.length < request.to - request.from + 1; ) {
      if (this.stopping) return 'the sidecar is stopping';
      if (this.window.epoch !== epoch) return 'the stream restarted while preparing';
      const part = this.window.at(seq);
      if (!part) {
        await this.window.changed();
        continue;
      }
      const expected = request.from + packets.length;
      if (part.header.version !== expected || part.index !== 0 || part.final?.phase !== 'two')
        return `version ${expected} is not a whole two-phase packet on replica ${this.name}`;
      packets.push(part);
      seq++;
    }
    return packets;
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

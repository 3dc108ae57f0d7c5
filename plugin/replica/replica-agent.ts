import { ApplyError } from '../ports/apply-error.js';
import type { DeltaSource } from '../ports/delta-source.js';
import type { NotLandedError } from '../ports/lockstep-error.js';
import { Signal } from '../support/signal.js';
import { guardStep, type StepOwner } from './apply-deadline.js';
import { ReplicaApplier } from './replica-applier.js';
import { ReplicaParticipant } from './replica-participant.js';
import type { ReplicaPosition, ReplicaTarget } from './replica-target.js';

export type { ReplicaPosition, ReplicaTarget } from './replica-target.js';

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

/**
 * Applies the stream to one replica with the one-phase rule: the next packet is
 * applied, a duplicate is skipped, a gap is closed from the window (the delta)
 * or by rewinding the stream. Consecutive packets share one replica transaction
 * (bounded by rows and milliseconds) that also stores the last `(version, lsn)`.
 * A failure halts this replica alone; it retries with backoff and resumes from
 * its durable position once the cause is gone. The applying itself is
 * {@link ReplicaApplier}'s; its part in two-phase rounds is {@link participant}'s.
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
  /** Round gids COMMIT PREPARED found rolled back outside lockstep on this replica. */
  commitsNotLanded = 0;
  /** Packets skipped because the replica already had them (after restarts and rewinds). */
  duplicatesSkipped = 0;
  /** Updates and deletes of missing rows skipped under `conflicts: "overwrite"`. */
  ignoredMissingRows = 0;
  /** This replica in two-phase rounds. */
  readonly participant: ReplicaParticipant;
  private stopping = false;
  /** Wakes the backoff after a failure when the agent is asked to stop. */
  private readonly stopAsked = new Signal();
  /** Waiting out the backoff after a failure: it cannot take part in a round now. */
  private inBackoff = false;
  private delay: number;
  /** The target's count of ignored rows already reported. */
  private ignoredBefore = 0;
  private readonly applier: ReplicaApplier;
  private readonly stepOwner: StepOwner;

  constructor(
    readonly name: string,
    private readonly target: ReplicaTarget,
    window: DeltaSource,
    private readonly options: ReplicaAgentOptions,
    private readonly events: ReplicaAgentEvents,
  ) {
    this.delay = options.retryInitialMs;
    this.stepOwner = {
      target,
      name,
      applyTimeoutMs: options.applyTimeoutMs,
      note: (message, fields) => events.note(this, message, fields),
    };
    const agent = this;
    this.participant = new ReplicaParticipant({
      name,
      get position() {
        return agent.position;
      },
      get stopping() {
        return agent.stopping;
      },
      get inBackoff() {
        return agent.inBackoff;
      },
      get failed() {
        return FAILED.has(agent.state);
      },
      get failure() {
        return agent.lastError?.message ?? null;
      },
      heard: () => target.heard?.() ?? 0,
      progressOn: (version, gid) => agent.applier.progressOn(version, gid),
      notLanded: (error) => agent.notLanded(error),
    });
    this.applier = new ReplicaApplier(
      name,
      target,
      window,
      this.participant,
      { node: name, ...options },
      {
        get stopping() {
          return agent.stopping;
        },
        status: (status) => {
          if (status === 'streaming' || this.state !== 'streaming') this.setState(status);
        },
        applied: (position, packets, rows) => this.applied(position, packets, rows),
        duplicates: (count) => {
          this.duplicatesSkipped += count;
        },
        note: (message, fields) => events.note(this, message, fields),
        needsRewind: (position) => events.needsRewind(this, position),
        roundCommitted: (version) => events.roundCommitted(version),
        timed: (seconds, commitTime) => events.timed?.(this, seconds, commitTime),
      },
    );
    this.window = window;
  }

  private readonly window: DeltaSource;

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
    this.delay = this.options.retryInitialMs;
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
        this.setState('catching-up');
        this.ignoredBefore = this.target.ignoredMissingRows;
        await this.applier.run(this.position);
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
        // Its position row is gone (taken back by attach, a resync midway): it is no longer
        // attached, and takes no part in rounds until placed again (a position kept from before
        // would have it vote no on each, and every round abort).
        if (this.lastError.kind === 'not-synced' && !this.lastError.version) this.position = null;
        // Still waiting for lockstep attach: told once, not at every look.
        const unchanged =
          previous?.kind === 'not-synced' &&
          this.lastError.kind === 'not-synced' &&
          previous.message === this.lastError.message &&
          this.state === 'halted';
        if (!unchanged)
          this.setState(this.lastError.kind === 'unresponsive' ? 'unresponsive' : 'halted');
        this.inBackoff = true;
        await this.stopAsked.wait(this.delay);
        this.inBackoff = false;
        // A replica waiting for lockstep attach is looked at often: it joins soon after attach placed it.
        const most = this.attached ? this.options.retryMaxMs : NOT_ATTACHED_RETRY_MS;
        this.delay = Math.min(this.delay * 2, Math.max(most, this.options.retryInitialMs));
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
    this.participant.committedThrough = 0;
  }

  /**
   * Found busy with a statement and silent since (its state stays as it
   * was): for the maxLagBytes rule it counts as halted.
   */
  get busy(): boolean {
    return this.applier.busy;
  }

  /** Asks the agent to finish: an open batch is rolled back, nothing half-done is kept. */
  stop(): void {
    // A statement busy for ever would keep the loop (and a resync waiting on it) for ever.
    if (this.applier.busy) this.target.abort();
    this.stopping = true;
    this.stopAsked.notify();
    this.participant.stop();
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
      this.participant.refuseWaiting(this.lastError?.message ?? `replica ${this.name} is ${state}`);
    this.events.stateChanged(this);
  }

  private guarded<T>(work: Promise<T>, version: number): Promise<T> {
    return guardStep(this.stepOwner, work, version);
  }

  /**
   * A round's gid was rolled back outside lockstep here (the round committed
   * elsewhere): counted, and the replica's error (status, the primary's notes)
   * until it applies again, which clears it like any apply error.
   */
  notLanded(error: NotLandedError): void {
    this.commitsNotLanded++;
    this.lastError = new ApplyError({
      node: this.name,
      kind: 'other',
      version: 0,
      problem: error.problem,
      fix: error.fix,
      cause: error,
    });
    this.events.stateChanged(this);
  }

  /**
   * The source of packets cannot give the next one now (a bus whose chain
   * breaks until its publisher repairs it): the replica's error until it
   * applies again, so a stalled replica shows in status and not only in a log.
   */
  sourceTrouble(problem: string, fix: string): void {
    if (this.lastError?.problem === problem) return;
    this.lastError = new ApplyError({ node: this.name, kind: 'other', version: 0, problem, fix });
    this.events.stateChanged(this);
  }

  /** The replica is durably at `next` (a transaction committed, or an idle point stored). */
  private applied(next: ReplicaPosition, packets: number, rows: number): void {
    this.events.applied(this, next, packets, rows);
    const ignored = this.target.ignoredMissingRows - this.ignoredBefore;
    if (ignored > 0) {
      this.ignoredBefore = this.target.ignoredMissingRows;
      this.ignoredMissingRows += ignored;
      this.events.note(this, 'skipped changes to rows it does not have', {
        ignored,
        total: this.ignoredMissingRows,
        version: next.version,
        conflicts: 'overwrite',
        event: 'missing-rows-skipped',
      });
    }
    this.packetsApplied += packets;
    this.rowsApplied += rows;
    this.position = next;
    this.participant.settleDeltas();
    if (this.lastError) {
      this.lastError = null;
      this.events.stateChanged(this);
      this.setState('catching-up');
    }
    this.delay = this.options.retryInitialMs;
  }
}

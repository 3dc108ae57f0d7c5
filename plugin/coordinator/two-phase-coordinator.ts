import type { Logger } from 'pino';
import {
  type Lsn,
  makeGid,
  type RoundAction,
  type RoundEvent,
  type RoundState,
  roundTransition,
  startRound,
} from '../protocol/index.js';
import type { FaultHook } from './fault-point.js';
import { type RecoveryReport, recoverPrepared } from './recover-prepared.js';
import type {
  DecisionStore,
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from './round-participant.js';

/** A two-phase packet the stream produced, as the coordinator schedules it. */
export interface TwoPhasePacket {
  readonly version: number;
  readonly lsn: Lsn;
  readonly rows: number;
  /** Arrived as one part (small enough to share a round with its neighbours). */
  readonly whole: boolean;
}

/** Tuning of the coordinator. */
export interface CoordinatorOptions {
  /** How long a participant may take to vote after a prepare (ms), per `batchRows` rows of the round. */
  readonly voteTimeoutMs: number;
  /** Most rows in one round when consecutive packets share it. */
  readonly batchRows: number;
  /** Backoff before retrying an aborted round, and between phase-two retries (ms). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** How often prepared transactions left by a crash are looked for (ms). */
  readonly recoveryIntervalMs: number;
}

/** Everything the coordinator works with. */
export interface CoordinatorParts {
  /** The stream's name (in gids and the decision log). */
  readonly stream: string;
  /** The participants that take part in rounds now (not stale, not resyncing). */
  participants(): readonly RoundParticipant[];
  /** Phase two and recovery per node, by name (replicas, and the primary for migrations). */
  readonly nodes: ReadonlyMap<string, PhaseTwoNode>;
  readonly decisions: DecisionStore;
  readonly log: Logger;
  readonly options: CoordinatorOptions;
  readonly fault?: FaultHook;
}

/** The round the stream is held at, for status and logs. */
export interface HeldRound {
  readonly gid: string;
  readonly from: number;
  readonly to: number;
  readonly phase: RoundState['phase'];
  /** Why participants refused, by name, in the last aborted attempt. */
  readonly refusals: Readonly<Record<string, string>>;
  readonly attempts: number;
}

/** Two-phase rounds as `status` reports them. */
export interface TwoPhaseStatus {
  readonly roundsCommitted: number;
  readonly roundsAborted: number;
  /** The round refused and being retried (the stream is held at `from`), with each refusal's reason. */
  readonly held: {
    readonly gid: string;
    readonly from: number;
    readonly to: number;
    readonly attempts: number;
    readonly refusals: Readonly<Record<string, string>>;
  } | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs two-phase rounds, one at a time, in stream order: prepare on every
 * participant, collect votes (with the needs-update → delta → prepare-again
 * loop), record the decision durably on the primary before any COMMIT
 * PREPARED, then finish phase two everywhere, retrying until done. An aborted
 * round is retried with backoff; meanwhile participants hold at its first
 * version. Recovery of prepared transactions left by a crash runs before the
 * first round and between rounds, so it never meets a round in flight.
 * The round itself is the pure state machine of `protocol/two-phase-round.ts`.
 */
export class TwoPhaseCoordinator {
  /** Rounds committed and aborted since start. */
  roundsCommitted = 0;
  roundsAborted = 0;
  /** The round being run or retried; null when none is pending. */
  held: HeldRound | null = null;
  /** Everything up to this version is decided and committed everywhere it was needed. */
  committedThrough = 0;
  private readonly queue = new Map<number, TwoPhasePacket>();
  private nextRound = 1;
  private stopping = false;
  private wake: (() => void) | null = null;
  private running: Promise<void> = Promise.resolve();
  private lastRecovery = 0;
  /** The last aborted attempt, until a round starting at the same version commits. */
  private refused: TwoPhaseStatus['held'] = null;

  constructor(private readonly parts: CoordinatorParts) {}

  /** Counts, and the refused round the stream is held at. */
  status(): TwoPhaseStatus {
    return {
      roundsCommitted: this.roundsCommitted,
      roundsAborted: this.roundsAborted,
      held: this.refused,
    };
  }

  /** lockstep gids prepared on any node, except the round in flight: how many, and the oldest's age (s). */
  async inDoubt(): Promise<{ count: number; oldestSeconds: number }> {
    const current = this.held?.gid;
    let count = 0;
    let oldestSeconds = 0;
    for (const node of this.parts.nodes.values()) {
      for (const prepared of await node.list(this.parts.stream)) {
        if (prepared.gid === current) continue;
        count++;
        oldestSeconds = Math.max(oldestSeconds, prepared.ageSeconds);
      }
    }
    return { count, oldestSeconds };
  }

  /** Recovers what a previous run left prepared, then starts the round loop. */
  async start(): Promise<void> {
    await this.recover();
    this.nextRound = (await this.parts.decisions.lastRound()) + 1;
    this.running = this.loop();
  }

  /** Schedules a two-phase packet the stream produced (repeats after a rewind are ignored). */
  offer(packet: TwoPhasePacket): void {
    if (packet.version <= this.committedThrough || this.queue.has(packet.version)) return;
    this.queue.set(packet.version, packet);
    this.wake?.();
  }

  /** Stops after the current round is finished (a round being decided or committed is completed first). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  /** One recovery pass over every node; the running round (if any) is left alone. */
  async recover(): Promise<RecoveryReport> {
    this.lastRecovery = Date.now();
    const report = await recoverPrepared(
      this.parts.stream,
      [...this.parts.nodes.values()],
      this.parts.decisions,
    );
    for (const r of report.resolved) {
      this.parts.log.warn(
        { gid: r.gid, node: r.node, action: r.action, ageSeconds: r.ageSeconds },
        `recovery: ${r.action === 'committed' ? 'committed' : 'rolled back'} ${r.gid} on ${r.node} (${r.action === 'committed' ? 'a commit decision is recorded' : 'no commit decision: presumed abort'})`,
      );
    }
    for (const f of report.failed) {
      this.parts.log.warn(
        { node: f.node, err: f.error },
        `recovery could not finish on ${f.node}: ${f.error} (retried every recovery interval)`,
      );
    }
    return report;
  }

  private async loop(): Promise<void> {
    let backoff = this.parts.options.retryInitialMs;
    while (!this.stopping) {
      if (Date.now() - this.lastRecovery >= this.parts.options.recoveryIntervalMs) {
        await this.recover().catch((error: Error) =>
          this.parts.log.warn({ err: error.message }, `recovery failed: ${error.message}`),
        );
      }
      const batch = this.nextBatch();
      if (!batch) {
        await this.pause(this.parts.options.recoveryIntervalMs);
        continue;
      }
      const outcome = await this.runRound(batch);
      if (outcome === 'committed') {
        backoff = this.parts.options.retryInitialMs;
        for (const packet of batch) this.queue.delete(packet.version);
        this.committedThrough = (batch[batch.length - 1] as TwoPhasePacket).version;
        for (const version of this.queue.keys())
          if (version <= this.committedThrough) this.queue.delete(version);
        this.held = null;
        this.refused = null;
      } else if (!this.stopping) {
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, this.parts.options.retryMaxMs);
      }
    }
  }

  /** Sleeps up to `ms`, woken early by a new packet or a stop. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** The lowest pending packet and the consecutive whole two-phase packets after it, up to `batchRows` rows. */
  private nextBatch(): TwoPhasePacket[] | null {
    let first: number | null = null;
    for (const version of this.queue.keys()) if (first === null || version < first) first = version;
    if (first === null) return null;
    const batch = [this.queue.get(first) as TwoPhasePacket];
    let rows = batch[0]?.rows ?? 0;
    if (!batch[0]?.whole) return batch;
    for (let v = first + 1; ; v++) {
      const next = this.queue.get(v);
      if (!next?.whole || rows + next.rows > this.parts.options.batchRows) break;
      batch.push(next);
      rows += next.rows;
    }
    return batch;
  }

  /** Runs one round to its end: committed or aborted everywhere. */
  private async runRound(batch: readonly TwoPhasePacket[]): Promise<'committed' | 'aborted'> {
    const first = batch[0] as TwoPhasePacket;
    const last = batch[batch.length - 1] as TwoPhasePacket;
    const participants = this.parts
      .participants()
      .filter((p) => p.heldVersion === null || p.heldVersion < last.version);
    if (participants.length === 0) return 'committed';
    const round = this.nextRound++;
    const request: PrepareRequest = {
      gid: makeGid({ stream: this.parts.stream, version: first.version, round }),
      round,
      from: first.version,
      to: last.version,
      toLsn: last.lsn,
    };
    const rows = batch.reduce((sum, p) => sum + p.rows, 0);
    const timeoutMs =
      this.parts.options.voteTimeoutMs *
      Math.max(1, Math.ceil(rows / this.parts.options.batchRows));
    const byName = new Map(participants.map((p) => [p.name, p]));
    const { log } = this.parts;
    const events: RoundEvent[] = [];
    let signal: (() => void) | null = null;
    const push = (event: RoundEvent) => {
      events.push(event);
      signal?.();
    };
    const deadlines = new Map<string, number>();
    const outstanding = new Map<string, Promise<Vote>>();
    let prepared = 0;
    let commits = 0;
    let outcome: 'committed' | 'aborted' | null = null;
    let commitChain: Promise<void> = Promise.resolve();
    let step = startRound(request.gid, [...byName.keys()]);
    const attempts = (this.held && this.held.from === first.version ? this.held.attempts : 0) + 1;
    const note = () => {
      this.held = {
        gid: request.gid,
        from: request.from,
        to: request.to,
        phase: step.state.phase,
        refusals: step.state.reasons,
        attempts,
      };
    };
    note();

    const retryLater = (event: RoundEvent) =>
      setTimeout(() => push(event), this.parts.options.retryInitialMs);
    const node = (name: string) => this.parts.nodes.get(name) as PhaseTwoNode;

    const perform = (action: RoundAction) => {
      const p = 'participant' in action ? action.participant : '';
      const participant = byName.get(p) as RoundParticipant;
      switch (action.type) {
        case 'prepare': {
          deadlines.set(p, Date.now() + timeoutMs);
          const vote = participant
            .prepare(request)
            .catch((error: Error): Vote => ({ vote: 'no', reason: error.message }));
          outstanding.set(p, vote);
          void vote.then((v) => {
            deadlines.delete(p);
            if (outstanding.get(p) === vote) outstanding.delete(p);
            if (v.vote === 'yes') this.parts.fault?.('after-prepare', ++prepared);
            if (v.vote === 'no') {
              push({ type: 'vote', participant: p, vote: 'no', reason: v.reason });
            } else push({ type: 'vote', participant: p, vote: v.vote });
          });
          return;
        }
        case 'send-delta': {
          const at = participant.heldVersion;
          log.info(
            { replica: p, gid: request.gid, at, version: request.from },
            `replica ${p} votes needs-update for ${request.gid} (holds version ${at}, the round starts at ${request.from}): sending the delta ${(at ?? 0) + 1}..${request.from - 1}`,
          );
          // A participant that cannot catch up now is asked again and answers no with its reason.
          void participant.delta(request).then(
            () => push({ type: 'delta-applied', participant: p }),
            () => push({ type: 'delta-applied', participant: p }),
          );
          return;
        }
        case 'record-commit-decision':
          void this.recordCommit(request, [...byName.keys()]).then((decision) => {
            if (decision === 'commit') this.parts.fault?.('after-decision', 1);
            push({ type: decision === 'commit' ? 'decision-recorded' : 'decision-failed' });
          });
          return;
        case 'commit-prepared':
          // One node after another: a crash between two commits leaves a definite prefix committed
          // (the fault point "after k of n commits"), and recovery finishes the rest.
          commitChain = commitChain
            .then(() => node(p).commit(request.gid))
            .then(
              () => {
                this.parts.fault?.('after-commit', ++commits);
                participant.decided(request, 'committed');
                push({ type: 'committed', participant: p });
              },
              (error: Error) => {
                log.warn(
                  { replica: p, gid: request.gid, err: error.message },
                  `COMMIT PREPARED ${request.gid} on ${p} failed: ${error.message}; retrying (the commit decision is recorded: it will be committed)`,
                );
                retryLater({ type: 'phase-two-failed', participant: p });
              },
            );
          return;
        case 'rollback-prepared':
          node(p)
            .rollback(request.gid)
            .then(
              () => {
                participant.decided(request, 'rolled-back');
                push({ type: 'rolled-back', participant: p });
              },
              (error: Error) => {
                log.warn(
                  { replica: p, gid: request.gid, err: error.message },
                  `ROLLBACK PREPARED ${request.gid} on ${p} failed: ${error.message}; retrying`,
                );
                retryLater({ type: 'phase-two-failed', participant: p });
              },
            );
          return;
        case 'finished':
          outcome = action.outcome;
          return;
      }
    };

    for (const action of step.actions) perform(action);
    let stopDeadline: number | null = null;
    while (outcome === null) {
      if (this.stopping) {
        // A decided round gets a few seconds to finish; whatever is left, recovery finishes at the next start.
        stopDeadline ??= Date.now() + 5_000;
        if (Date.now() > stopDeadline) {
          log.warn(
            { gid: request.gid, phase: step.state.phase },
            `stopping with ${request.gid} unfinished (${step.state.phase}): recovery finishes it at the next start`,
          );
          return 'aborted';
        }
      }
      while (events.length === 0) {
        const now = Date.now();
        let earliest = Number.POSITIVE_INFINITY;
        for (const deadline of deadlines.values()) earliest = Math.min(earliest, deadline);
        if (earliest <= now) {
          deadlines.clear();
          events.push({ type: 'timeout' });
          break;
        }
        // Stopping while votes are collected: abort (nothing is decided yet).
        if (this.stopping && step.state.phase === 'voting') {
          events.push({ type: 'timeout' });
          break;
        }
        await new Promise<void>((resolve) => {
          signal = resolve;
          setTimeout(resolve, Math.min(earliest - now, 200));
        });
        signal = null;
      }
      const event = events.shift() as RoundEvent;
      step = roundTransition(step.state, event);
      note();
      for (const action of step.actions) perform(action);
    }

    // A prepare still in flight when the round ended: roll it back when it lands.
    for (const [p, vote] of outstanding) {
      void vote.then(async (v) => {
        if (v.vote !== 'yes') return;
        await this.rollbackUntilDone(node(p), request.gid);
        byName.get(p)?.decided(request, 'rolled-back');
      });
    }
    if (outcome === 'committed') {
      this.roundsCommitted++;
      log.debug(
        { gid: request.gid, from: request.from, to: request.to },
        `committed ${request.gid}`,
      );
    } else {
      this.roundsAborted++;
      this.refused = {
        gid: request.gid,
        from: request.from,
        to: request.to,
        attempts,
        refusals: step.state.reasons,
      };
      const reasons = Object.entries(step.state.reasons)
        .map(([who, why]) => `${who}: ${why}`)
        .join('; ');
      log.warn(
        {
          gid: request.gid,
          from: request.from,
          to: request.to,
          attempt: attempts,
          refusals: step.state.reasons,
        },
        `two-phase round ${request.gid} (versions ${request.from}..${request.to}) aborted, nothing committed anywhere — ${reasons}; retrying with backoff, the stream is held at version ${request.from}`,
      );
    }
    return outcome;
  }

  /**
   * Records the commit decision. When the write fails its outcome is unknown:
   * an `abort` row is then written in its place (or the commit row found), which
   * settles the round one way for good.
   */
  private async recordCommit(
    request: PrepareRequest,
    participants: readonly string[],
  ): Promise<'commit' | 'abort'> {
    const record = {
      gid: request.gid,
      round: request.round,
      versionFrom: request.from,
      versionTo: request.to,
      participants,
    };
    try {
      return await this.parts.decisions.decide(record, 'commit');
    } catch (error) {
      this.parts.log.warn(
        { gid: request.gid, err: (error as Error).message },
        `recording the commit decision for ${request.gid} failed: ${(error as Error).message}; settling it`,
      );
    }
    let delay = this.parts.options.retryInitialMs;
    for (;;) {
      try {
        // Unknown outcome: an abort row settles it (or the commit row that won is read back).
        return await this.parts.decisions.decide(record, 'abort');
      } catch {
        await sleep(delay);
        delay = Math.min(delay * 2, this.parts.options.retryMaxMs);
      }
    }
  }

  private async rollbackUntilDone(node: PhaseTwoNode, gid: string): Promise<void> {
    let delay = this.parts.options.retryInitialMs;
    // Tried at least once; after a stop, recovery at the next start finishes it.
    do {
      try {
        await node.rollback(gid);
        return;
      } catch {
        await sleep(delay);
        delay = Math.min(delay * 2, this.parts.options.retryMaxMs);
      }
    } while (!this.stopping);
  }
}

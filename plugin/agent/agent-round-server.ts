import type { Logger } from 'pino';
import { NotLandedError } from '../ports/lockstep-error.js';
import type { PhaseTwoNode } from '../ports/phase-two-node.js';
import type { MigrationAtAgent } from '../protocol/agent-silence.js';
import { parseGid } from '../protocol/index.js';
import {
  type AgentRequest,
  type AgentVerb,
  deposedRefusal,
  type WaitingPacket,
  type WirePrepare,
  type WireReply,
} from '../protocol/round-subjects.js';
import type { ReplicaParticipant } from '../replica/replica-participant.js';
import { RecentSet } from '../support/recent-set.js';
import type { AgentMigrations } from './agent-migrations.js';

/** How an agent's round server reaches the bus and its replica (the composition root wires it). */
export interface AgentRoundsWiring {
  /** Starts answering the coordinator's requests for this replica; resolves to how to stop. */
  serve(
    handle: (verb: AgentVerb, request: AgentRequest) => Promise<WireReply<unknown>>,
  ): () => Promise<void>;
  /** Asks the coordinator what holds for `gid` (presumed abort); throws when none answers in time. */
  ask(gid: string): Promise<WireReply<'commit' | 'abort'>>;
  /** Tells the coordinator this replica waits at a two-phase packet (after a coordinator restart nobody else may). */
  waiting(packet: WaitingPacket): void;
  /** The stream's name (in its gids). */
  readonly stream: string;
  /** Phase two on this replica (its own connection, not the apply one). */
  readonly node: PhaseTwoNode;
  /** How often a gid left prepared is asked about again (ms). */
  readonly recoveryIntervalMs: number;
  /** Migration rounds (`migrate`, `exec`) on this replica. */
  readonly migrations?: AgentMigrations;
}

const ok = (value: unknown, at?: number | null): WireReply<unknown> => ({ ok: true, value, at });

/**
 * The agent's side of two-phase rounds over the bus: the coordinator's
 * requests land on the replica machine's in-process participant (the applier
 * parks at the two-phase packet as in process) and on phase two on the
 * replica. Requests of a coordinator older than the newest epoch seen are
 * refused (it was deposed). Served only while the agent holds the replica's
 * lock: a standby never answers.
 */
export class AgentRoundServer {
  private newestEpoch = 0;
  /** Prepares this process voted yes to, until their decision reached the applier. */
  private readonly voted = new Map<string, WirePrepare>();
  /** Migrations this process prepared, until their phase two: their `migrate` still decides them. */
  private readonly migrated = new Set<string>();
  /** Migrations being prepared now. */
  private readonly preparing = new Set<string>();
  /**
   * Gids rolled back here: a prepare that finishes after its round ended is
   * rolled back at once. Only a prepare still running can need one (stream
   * rounds and migrations): a few hundred are plenty.
   */
  private readonly ended = new RecentSet<string>(256);

  constructor(
    private readonly replica: string,
    private readonly participant: () => ReplicaParticipant | null,
    private readonly wiring: AgentRoundsWiring,
    private readonly log: Logger,
  ) {}

  /** Answers one request of the coordinator. */
  readonly handle = async (verb: AgentVerb, request: AgentRequest): Promise<WireReply<unknown>> => {
    // No epoch (a malformed or foreign message) would also wipe the fence for every later request.
    if (!Number.isSafeInteger(request.epoch))
      return { ok: false, error: `request without a coordinator epoch refused (${verb})` };
    if (request.epoch < this.newestEpoch) {
      this.log.warn(
        { replica: this.replica, verb, epoch: request.epoch, event: 'deposed-refused' },
        'request of a deposed coordinator refused',
      );
      return { ok: false, error: deposedRefusal(request.epoch, this.newestEpoch), deposed: true };
    }
    this.newestEpoch = request.epoch;
    const { node } = this.wiring;
    switch (verb) {
      case 'prepare':
        return this.prepare(request.request as WirePrepare);
      case 'delta': {
        const participant = this.participant();
        if (!participant) return { ok: false, error: `agent of ${this.replica} is not applying` };
        await participant.delta(request.request as WirePrepare);
        return ok(null, participant.heldVersion);
      }
      case 'decided': {
        const gid = request.request?.gid ?? '';
        // Its prepare may still wait parked: a round that ended is not taken at the gate.
        this.participant()?.ended(gid);
        this.tell(gid, request.outcome ?? 'rolled-back');
        return ok(null);
      }
      case 'list':
        return ok(await node.list(request.stream ?? this.wiring.stream));
      case 'commit':
        try {
          await node.commit(request.gid ?? '');
        } catch (error) {
          if (!(error instanceof NotLandedError)) throw error;
          this.migrated.delete(request.gid ?? '');
          this.participant()?.notLanded(null, error);
          return { ok: false, error: error.message, notLanded: error.kind };
        }
        this.migrated.delete(request.gid ?? '');
        this.tell(request.gid ?? '', 'committed');
        return ok(null);
      case 'rollback':
        // Ended before ROLLBACK PREPARED runs: a prepare finishing meanwhile, or one this rollback
        // failed on (55000 "is busy"), must still be rolled back when it lands.
        this.ended.add(request.gid ?? '');
        // Its prepare may wait parked: dropped now, not after a ROLLBACK PREPARED that may hang.
        this.participant()?.ended(request.gid ?? '');
        await node.rollback(request.gid ?? '');
        this.migrated.delete(request.gid ?? '');
        this.tell(request.gid ?? '', 'rolled-back');
        return ok(null);
      case 'applied':
        return ok(await this.migrations().applied());
      case 'migrate':
        return this.migrate(request.gid ?? '');
      case 'alive':
        // With the progress of a round's prepare: the coordinator waits while it grows.
        return ok({
          migration: this.migrationState(request.gid ?? ''),
          progress: this.participant()?.progress(request.gid ?? ''),
        });
    }
  };

  private migrations(): AgentMigrations {
    const { migrations } = this.wiring;
    if (!migrations) throw new Error(`agent of ${this.replica} takes no migrations`);
    return migrations;
  }

  /** Where migration `gid` stands here, for a coordinator whose request or answer may have been lost. */
  private migrationState(gid: string): MigrationAtAgent {
    if (this.preparing.has(gid)) return 'preparing';
    return this.migrated.has(gid) ? 'prepared' : 'none';
  }

  /** A migration's prepare; one that finishes after its round ended is rolled back at once. */
  private async migrate(gid: string): Promise<WireReply<unknown>> {
    this.preparing.add(gid);
    try {
      await this.migrations().prepare(gid);
    } finally {
      this.preparing.delete(gid);
    }
    if (this.ended.has(gid)) {
      // Its round ended while it prepared: rolled back, so it must not answer as prepared.
      await this.wiring.node.rollback(gid);
      this.log.warn(
        { replica: this.replica, gid, event: 'migration-late-rolled-back' },
        'migration prepared after its round ended: rolled back',
      );
      return { ok: false, error: `migration ${gid} prepared after its round ended: rolled back` };
    }
    this.migrated.add(gid);
    this.log.info(
      { replica: this.replica, gid, event: 'migration-prepared' },
      'migration prepared',
    );
    return ok(null);
  }

  private async prepare(request: WirePrepare): Promise<WireReply<unknown>> {
    const participant = this.participant();
    if (!participant)
      return ok({ vote: 'no', reason: `agent of ${this.replica} is not applying` }, null);
    // Its rollback overtook it: parked, it would be taken at the gate of a round that ended.
    if (this.ended.has(request.gid))
      return ok({ vote: 'no', reason: `round ${request.gid} ended` }, participant.heldVersion);
    const vote = await participant.prepare(request);
    if (vote.vote === 'yes') {
      this.voted.set(request.gid, request);
      this.log.info(
        {
          replica: this.replica,
          gid: request.gid,
          from: request.from,
          to: request.to,
          event: 'voted-yes',
        },
        'prepared: voted yes',
      );
      // Its round ended while PREPARE ran (the coordinator stopped waiting): nothing may stay prepared.
      if (this.ended.has(request.gid)) {
        await this.wiring.node.rollback(request.gid);
        this.tell(request.gid, 'rolled-back');
      }
    }
    return ok(vote, participant.heldVersion);
  }

  /**
   * Phase two of an in-doubt gid. Rolled back outside lockstep (NotLandedError):
   * its applier is told rolled-back, and the other in-doubt gids still finish.
   */
  private async finishInDoubt(
    gid: string,
    decision: 'commit' | 'abort',
  ): Promise<'committed' | 'rolled-back'> {
    const { node } = this.wiring;
    if (decision === 'abort') {
      await node.rollback(gid);
      return 'rolled-back';
    }
    try {
      await node.commit(gid);
      return 'committed';
    } catch (error) {
      if (!(error instanceof NotLandedError)) throw error;
      this.log.error(
        { replica: this.replica, gid, err: error.message, event: 'commit-not-landed' },
        'COMMIT PREPARED: gid rolled back outside lockstep',
      );
      this.participant()?.notLanded(null, error);
      return 'rolled-back';
    }
  }

  /** Phase two finished on the replica: the applier waiting for this gid's decision goes on. */
  private tell(gid: string, outcome: 'committed' | 'rolled-back'): void {
    const request = this.voted.get(gid);
    const participant = this.participant();
    if (request) {
      this.voted.delete(gid);
      participant?.decided(request, outcome);
      return;
    }
    // Prepared before this process started: an applier parked at that round's gate reads its position again.
    const version = parseGid(gid, this.wiring.stream)?.version;
    if (outcome !== 'committed' || version === undefined || !participant) return;
    participant.committedThrough = Math.max(participant.committedThrough, version);
    participant.nudge();
  }

  /**
   * One pass over the gids prepared on the replica: each one this process is
   * not waiting on (a crash left it), or waited on for longer than the
   * recovery interval, is finished by the coordinator's answer — commit, or
   * abort (presumed, written by the coordinator first). No answer: it stays
   * prepared, reported in doubt; never guessed.
   */
  async resolveInDoubt(): Promise<number> {
    const { node } = this.wiring;
    let inDoubt = 0;
    for (const prepared of await node.list(this.wiring.stream)) {
      const age = prepared.ageSeconds * 1000;
      if (prepared.kind === 'migration') {
        // A migration's own `migrate` decides it while it may still collect votes.
        if (!this.wiring.migrations) continue;
        if (this.migrated.has(prepared.gid) && age < this.wiring.migrations.patienceMs) continue;
      } else if (this.voted.has(prepared.gid) && age < this.wiring.recoveryIntervalMs) continue;
      const { gid } = prepared;
      let reply: WireReply<'commit' | 'abort'>;
      try {
        reply = await this.wiring.ask(gid);
        if (!reply.ok) throw new Error(reply.error);
      } catch (error) {
        inDoubt++;
        this.log.warn(
          { replica: this.replica, gid, err: (error as Error).message, event: 'in-doubt' },
          'gid in doubt: kept prepared until the coordinator answers',
        );
        continue;
      }
      const outcome = await this.finishInDoubt(gid, reply.value);
      this.migrated.delete(gid);
      this.tell(gid, outcome);
      this.log.warn(
        { replica: this.replica, gid, decision: reply.value, event: 'in-doubt-resolved' },
        outcome === 'committed' ? 'in-doubt gid committed' : 'in-doubt gid rolled back',
      );
    }
    return inDoubt;
  }
}

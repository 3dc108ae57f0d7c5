/**
 * A world for the apply machine's model tests: a real PacketWindow fed by a
 * stream that can rewind and restart, a replica database that checks every
 * write (compare-and-set on its position; writes wait while a round is prepared),
 * a sequential coordinator (prepares, timeouts, late rollbacks, decisions,
 * rounds committed without this replica), and agent crashes and stops.
 */
import { expect } from 'vitest';
import {
  type ApplyCommand,
  type ApplyEvent,
  type ApplyStep,
  applyTransition,
  type GateRequest,
  type Lsn,
  PacketNotPastError,
  type PacketPart,
  type ResumePoint,
  startApply,
} from '../../plugin/protocol/index.js';
import { lookAt } from '../../plugin/replica/replica-applier.js';
import { PacketWindow } from '../../plugin/sidecar/packet-window.js';
import { ReplicaDb } from './replica-apply-db.js';

export { makePackets } from './replica-apply-db.js';

type Round = { request: GateRequest; state: 'asked' | 'yes' };

export class World {
  readonly window: PacketWindow;
  readonly db: ReplicaDb;
  clock = 0;
  /** Changes of the window (and gate signals) so far: a wait ends once they move. */
  private changes = 0;
  private gateSignals = 0;
  private next: { version: number; index: number } = { version: 1, index: 0 };
  private rewindTo: number | null = null;
  // The agent and its machine.
  step: ApplyStep | null = null;
  private waitMark = { changes: 0, gate: 0 };
  private batchDeadline: { batch: number; at: number } | null = null;
  position: ResumePoint | null = null;
  stopping = false;
  // The participant.
  private parked: GateRequest | null = null;
  private taken: GateRequest | null = null;
  private awaiting: {
    gid: string;
    outcome: 'committed' | 'rolled-back' | null | undefined;
  } | null = null;
  private committedThrough = 0;
  // The coordinator.
  private round: Round | null = null;
  private attempt = 0;
  /** Gids it gave up on: a late yes for one is rolled back. */
  private readonly abandoned = new Set<string>();
  /** Highest version a round committed (with this replica or without it). */
  private roundsCommitted = 0;

  constructor(
    readonly packets: PacketPart[][],
    windowChanges: number,
    private readonly batchRows: number,
    private readonly choose: (n: number) => number,
  ) {
    this.window = new PacketWindow(windowChanges, batchRows);
    this.db = new ReplicaDb(packets, () => this.roundsCommitted);
  }

  get done(): boolean {
    return this.db.version === this.packets.length && this.db.prepared.size === 0;
  }

  private touch(): void {
    this.changes++;
  }

  // --- the agent --------------------------------------------------------------------------

  /** (Re)starts the agent from the replica's durable position, as its run loop does. */
  start(): void {
    this.stopping = false;
    this.position = { version: this.db.version, lsn: this.db.lsn };
    const cursor = this.window.locate(this.position.version);
    this.window.setCursor('r', cursor);
    this.touch();
    const options = { node: 'r', batchRows: this.batchRows, batchMs: 10 };
    this.batchDeadline = null;
    this.run(startApply(options, this.position, this.window.epoch, cursor));
  }

  /** The agent dies: its open transaction is gone, nothing it waited for is answered. */
  crash(): void {
    this.step = null;
    this.db.open = null;
    this.position = null;
    this.window.setCursor('r', null);
    this.refuseParked();
    this.taken = null;
    this.awaiting = null;
    this.touch();
  }

  stop(): void {
    this.stopping = true;
    this.refuseParked();
    if (this.awaiting) this.awaiting.outcome = null;
    this.gateSignals++;
  }

  /** Performs the effects of a step and keeps its last command, which awaits an event. */
  private run(step: ApplyStep): void {
    this.step = step;
    const last = step.commands[step.commands.length - 1];
    expect(last, `a step with no way out in ${step.state.mode.kind}`).toBeDefined();
    for (const command of step.commands.slice(0, -1)) this.effect(command);
    const blocking = last as ApplyCommand;
    this.waitMark = { changes: this.changes, gate: this.gateSignals };
    // Stopping leaves nothing half-done: the machine rolled back what it had open.
    if (blocking.type === 'exit') expect(this.db.open, 'exit with a transaction open').toBeNull();
    // A genuine stream never trips the LSN guard (movesPast), whatever wrote the position.
    if (blocking.type === 'fail') expect(blocking.error).not.toBeInstanceOf(PacketNotPastError);
    if (blocking.type === 'exit' || blocking.type === 'fail') {
      this.window.setCursor('r', null);
      this.step = null;
      this.db.open = null; // the run loop rolls back and closes
      this.position = null;
    }
    if (blocking.type === 'vote-yes') this.voteYes(blocking.gid);
  }

  private effect(command: ApplyCommand): void {
    switch (command.type) {
      case 'set-cursor':
        this.window.setCursor('r', command.seq);
        this.touch();
        return;
      case 'applied':
        expect(command.position.version).toBe(this.db.version);
        this.position = command.position;
        return;
      case 'request-rewind':
        this.rewindTo = command.position.version;
        return;
      case 'cut-newest':
        this.window.cutNewest();
        this.touch();
        return;
      case 'begin':
        this.db.begin(command.from);
        return;
      case 'take-prepare':
        expect(this.taken).toBeNull();
        this.taken = this.parked;
        this.parked = null;
        return;
      case 'vote-no':
        expect(this.taken).not.toBeNull();
        this.answer('no');
        return;
      case 'status':
      case 'duplicates':
      case 'note-skipped':
      case 'note-delta':
        return;
      default:
        throw new Error(`${command.type} is not an effect`);
    }
  }

  /** Whether the machine's pending command can be answered now. */
  canAnswer(): boolean {
    const command = this.step?.commands[this.step.commands.length - 1];
    if (!command) return false;
    const moved = this.changes > this.waitMark.changes;
    if (command.type === 'look' && command.wait !== 'none') {
      if (this.stopping || moved || command.wait === 'window') return this.stopping || moved;
      const { batch, ms } = command.wait;
      if (this.batchDeadline?.batch !== batch) this.batchDeadline = { batch, at: this.clock + ms };
      return this.clock >= this.batchDeadline.at;
    }
    if (command.type === 'gate' && command.wait)
      return this.stopping || moved || this.gateSignals > this.waitMark.gate;
    if (command.type === 'vote-yes') return this.awaiting?.outcome !== undefined;
    return true;
  }

  /** Answers the machine's pending command; `fail` makes work on the replica fail. */
  respond(fail: boolean): void {
    const step = this.step as ApplyStep;
    const command = step.commands[step.commands.length - 1] as ApplyCommand;
    this.run(applyTransition(step.state, this.event(command, fail)));
  }

  private event(command: ApplyCommand, fail: boolean): ApplyEvent {
    const failed: ApplyEvent = { type: 'failed', reason: 'boom', error: new Error('boom') };
    const done: ApplyEvent = { type: 'done' };
    switch (command.type) {
      case 'look':
        return this.stopping ? { type: 'stop' } : lookAt(this.window, command.seq, this.clock);
      case 'gate':
        return this.stopping ? { type: 'stop' } : this.gate(command.version, command.seq);
      case 'locate': {
        const seq = this.window.locate(command.version);
        this.window.setCursor('r', seq);
        this.touch();
        const passed =
          command.count && seq !== null ? this.window.packetsBetween(this.window.start, seq) : 0;
        return { type: 'located', seq, epoch: this.window.epoch, passed };
      }
      case 'vote-yes':
        return { type: 'decision', outcome: this.awaiting?.outcome ?? null };
      default:
        if (fail || this.db.blocks(command)) return failed;
        if (command.type === 'read-position')
          return { type: 'done', position: { version: this.db.version, lsn: this.db.lsn } };
        this.db.perform(command);
        return done;
    }
  }

  private gate(version: number, seq: number): ApplyEvent {
    const w = this.window;
    return {
      type: 'gate',
      epoch: w.epoch,
      now: this.clock,
      pending: this.parked,
      committedThrough: this.committedThrough,
      roundCommitted: this.roundsCommitted >= version,
      cut: w.cutAfter(seq),
      more: w.at(seq + 1) !== undefined,
    };
  }

  // --- the participant and the coordinator ----------------------------------------------

  private refuseParked(): void {
    if (this.parked && this.round?.request === this.parked) this.round = null;
    this.parked = null;
  }

  private answer(vote: 'yes' | 'no'): void {
    const request = this.taken as GateRequest;
    this.taken = null;
    if (this.round?.request === request) {
      if (vote === 'yes') this.round.state = 'yes';
      else this.round = null; // aborted: retried later
    } else if (vote === 'yes') this.abandoned.add(request.gid);
  }

  private voteYes(gid: string): void {
    this.awaiting = { gid, outcome: undefined };
    this.answer('yes');
  }

  private decided(gid: string, request: GateRequest, outcome: 'committed' | 'rolled-back'): void {
    if (outcome === 'committed') {
      this.committedThrough = Math.max(this.committedThrough, request.to);
      this.roundsCommitted = Math.max(this.roundsCommitted, request.to);
    }
    if (this.awaiting?.gid === gid) this.awaiting.outcome = outcome;
    this.gateSignals++;
  }

  /** The next two-phase packet not committed anywhere yet, and how far its round reaches. */
  private nextRound(): GateRequest | null {
    for (
      let v = Math.max(this.db.version, this.roundsCommitted) + 1;
      v <= this.packets.length;
      v++
    ) {
      const parts = this.packets[v - 1] as PacketPart[];
      if (parts[parts.length - 1]?.final?.phase !== 'two') continue;
      // As the coordinator does: consecutive whole two-phase packets share a round, up to batchRows rows.
      let to = v;
      let rows = parts[0]?.changes.length ?? 0;
      while (parts.length === 1 && this.isSmallTwoPhase(to + 1) && this.choose(2)) {
        rows += this.packets[to]?.[0]?.changes.length ?? 0;
        if (rows > this.batchRows) break;
        to++;
      }
      this.attempt++;
      return { gid: `lockstep_s_${v}_${this.attempt}`, from: v, to };
    }
    return null;
  }

  private isSmallTwoPhase(version: number): boolean {
    const parts = this.packets[version - 1];
    return parts?.length === 1 && parts[0]?.final?.phase === 'two';
  }

  /** One move of the coordinator; `calm`: no timeouts, aborts or rounds without this replica. */
  coordinate(calm: boolean): boolean {
    const late = [...this.abandoned].find((gid) => this.db.prepared.has(gid));
    if (late) {
      const request = (this.db.prepared.get(late) as { request: GateRequest }).request;
      this.db.rollbackPrepared(late);
      this.abandoned.delete(late);
      this.decided(late, request, 'rolled-back');
      return true;
    }
    const round = this.round;
    if (round?.state === 'yes') {
      if (!calm && this.choose(4) !== 0) return false; // the decision takes a while
      const commit = calm || this.choose(4) !== 0;
      this.round = null;
      if (commit) this.db.commitPrepared(round.request.gid);
      else this.db.rollbackPrepared(round.request.gid);
      this.decided(round.request.gid, round.request, commit ? 'committed' : 'rolled-back');
      return true;
    }
    if (round) {
      // A calm coordinator times out only a prepare that was lost (the agent crashed).
      const lost = this.parked !== round.request && this.taken !== round.request;
      if (calm && !lost) return false;
      this.round = null; // the vote timed out: a prepare still parked or in work lands late
      this.abandoned.add(round.request.gid);
      return true;
    }
    const request = this.nextRound();
    if (!request) return false;
    if (!calm && (!this.step || this.choose(4) === 0) && this.db.prepared.size === 0) {
      // The replica takes no part (it is down, or resyncing): the round commits on the others.
      this.roundsCommitted = request.to;
      this.gateSignals++;
      return true;
    }
    return this.prepare(request);
  }

  /** *prepare* as the participant answers it (see replica-participant.ts). */
  private prepare(request: GateRequest): boolean {
    if (!this.step || this.stopping || !this.position) return false;
    if (this.position.version !== request.from - 1) return false; // needs-update or no: later
    this.parked = request;
    this.round = { request, state: 'asked' };
    this.gateSignals++;
    return true;
  }

  // --- the stream -------------------------------------------------------------------------

  /** Pushes the next part if the window has room; marks an idle point at the end. */
  push(): boolean {
    const parts = this.packets[this.next.version - 1];
    if (!parts) {
      const last = this.packets.length;
      const idle = this.window.idlePoint;
      if (last === 0 || (idle && idle.version === last)) return false;
      this.window.markIdle({ version: last, lsn: `0/${(last * 16 + 8).toString(16)}` as Lsn });
      this.touch();
      return true;
    }
    if (!this.window.hasRoom()) return false;
    this.window.push(parts[this.next.index] as PacketPart);
    this.next =
      this.next.index + 1 < parts.length
        ? { version: this.next.version, index: this.next.index + 1 }
        : { version: this.next.version + 1, index: 0 };
    this.touch();
    return true;
  }

  /** Restarts the stream after `from` (asked for by the agent, or anywhere not past it). */
  rewind(anywhere: boolean): boolean {
    let from = this.rewindTo;
    if (anywhere) from = this.choose(Math.max(this.db.version, 0) + 1);
    if (from === null) return false;
    this.rewindTo = null;
    this.window.reset();
    this.next = { version: from + 1, index: 0 };
    this.touch();
    return true;
  }
}

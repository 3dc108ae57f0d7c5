import type { DeltaSource } from '../ports/delta-source.js';
import {
  type ApplyCommand,
  type ApplyEvent,
  type ApplyOptions,
  applyTransition,
  type LookWait,
  PacketNotPastError,
  type PacketPart,
  startApply,
  type WindowLook,
} from '../protocol/index.js';
import { sleep } from '../support/sleep.js';
import { guardStep, type StepOwner } from './apply-deadline.js';
import { notPastError } from './not-past-error.js';
import { PacketProgress } from './packet-progress.js';
import type { ReplicaParticipant } from './replica-participant.js';
import type { ReplicaPosition, ReplicaTarget } from './replica-target.js';

/** What the applier tells its agent. */
export interface ApplierHost {
  readonly stopping: boolean;
  /** `catching-up` is reported unless the agent is streaming. */
  status(status: 'streaming' | 'catching-up'): void;
  /** A transaction committed (or an idle point stored): the replica is durably at `position`. */
  applied(position: ReplicaPosition, packets: number, rows: number): void;
  duplicates(count: number): void;
  note(message: string, fields: Record<string, unknown>): void;
  needsRewind(position: ReplicaPosition): void;
  roundCommitted(version: number): boolean;
  timed?(seconds: number, commitTime: string): void;
}

const DONE: ApplyEvent = { type: 'done' };
const STOP: ApplyEvent = { type: 'stop' };

/**
 * Drives the pure apply machine (`protocol/replica-apply.ts`) for one replica:
 * it takes looks at the window and the gate, performs the machine's commands
 * on the replica (each bounded by the apply deadline) and feeds back what
 * happened. A failure ends {@link run} with the error (the agent retries).
 */
export class ReplicaApplier {
  /** One timer per batch for its batchMs, not one per wake-up while it waits. */
  private deadline: { batch: number; passed: Promise<unknown> } | null = null;
  private readonly packetProgress: PacketProgress;

  constructor(
    private readonly name: string,
    private readonly target: ReplicaTarget,
    private readonly window: DeltaSource,
    private readonly participant: ReplicaParticipant,
    private readonly options: ApplyOptions & { readonly applyTimeoutMs: number },
    private readonly host: ApplierHost,
  ) {
    this.packetProgress = new PacketProgress(() => target.heard?.() ?? 0);
    this.stepOwner = {
      target,
      name,
      applyTimeoutMs: options.applyTimeoutMs,
      note: (message, fields) => host.note(message, fields),
      busy: () => this.foundBusy(),
    };
  }

  private readonly stepOwner: StepOwner;
  /** Whether the cursor was let go while the replica was busy (see {@link letGo}). */
  private letGoOf = false;
  /** The replica's answers counted when it was last found busy; null when not found busy since it moved. */
  private heardWhenBusy: number | null = null;
  /** Whether the replica's open transaction holds parts of a large packet (from `begin` to its commit or rollback). */
  private packetOpen = false;

  /**
   * Found busy and silent since, whether or not it let go of the window: its
   * position holds the slot (the slot keeper bounds that by maxLagBytes, as
   * for a halted one).
   */
  get busy(): boolean {
    return this.heardWhenBusy !== null && (this.target.heard?.() ?? 0) === this.heardWhenBusy;
  }

  /**
   * Round `gid`'s count of new work on large packet `version`, whose parts
   * stream into the replica before the gate; -1 when not on it (see {@link PacketProgress}).
   */
  progressOn(version: number, gid: string): number {
    return this.packetProgress.of(version, gid);
  }

  /** Applies from the durable `position` on, until the agent stops or a step fails. */
  async run(position: ReplicaPosition): Promise<void> {
    this.deadline = null;
    this.packetProgress.closed();
    this.packetOpen = false;
    const epoch = this.window.epoch;
    const cursor = this.locate(position.version);
    this.noteDelta(position);
    let step = startApply(this.options, position, epoch, cursor);
    for (;;) {
      let event: ApplyEvent | undefined;
      // An index, not for-of: an iterator live across the await below is allocated per step.
      const { commands } = step;
      for (let i = 0; i < commands.length; i++) {
        const result = this.perform(commands[i] as ApplyCommand);
        if (result !== undefined) event = result instanceof Promise ? await result : result;
      }
      if (event === undefined) return;
      step = applyTransition(step.state, event);
    }
  }

  /** Performs one command; commands that await something answer with the next event. */
  private perform(command: ApplyCommand): ApplyEvent | Promise<ApplyEvent> | undefined {
    const { window } = this;
    switch (command.type) {
      case 'look':
        this.retake(command.seq);
        return command.wait === 'none'
          ? this.look(command.seq)
          : this.waitFor(command.wait).then(() => this.look(command.seq));
      case 'set-cursor':
        this.letGoOf = false;
        this.heardWhenBusy = null;
        window.setCursor(this.name, command.seq);
        return;
      case 'apply-batch':
        return this.applyBatch(command);
      case 'locate': {
        const seq = this.locate(command.version);
        const passed = command.count && seq !== null ? window.packetsBetween(window.start, seq) : 0;
        return { type: 'located', seq, epoch: window.epoch, passed };
      }
      case 'gate':
        this.retake(command.seq);
        return command.wait
          ? this.participant
              .gateChanged(window.changed())
              .then(() => this.gate(command.version, command.seq))
          : this.gate(command.version, command.seq);
      case 'vote-yes':
        return this.participant
          .voteYes(command.gid)
          .then((outcome): ApplyEvent => ({ type: 'decision', outcome }));
      case 'apply-part':
      case 'commit':
      case 'rollback':
      case 'advance':
      case 'read-position':
        return this.onReplica(command);
      case 'exit':
        return;
      case 'fail':
        throw command.error instanceof PacketNotPastError
          ? notPastError(this.name, command.error)
          : command.error;
      default:
        this.effect(command);
        return;
    }
  }

  /** Work on the replica, bounded by the apply deadline; a failure becomes the `failed` event. */
  private onReplica(
    command: Extract<
      ApplyCommand,
      { type: 'apply-part' | 'commit' | 'rollback' | 'advance' | 'read-position' }
    >,
  ): Promise<ApplyEvent> {
    const { target } = this;
    switch (command.type) {
      case 'apply-part': {
        const { header, changes, index } = command.part;
        const progress = this.packetProgress;
        progress.started(header.version, index);
        return this.work(target.apply(changes, header.version, header.lsn), header.version).then(
          (event) => {
            progress.ended(event.type === 'done');
            return event;
          },
        );
      }
      case 'commit':
        this.packetProgress.closed();
        this.packetOpen = false;
        return this.work(
          target.commit(command.position, command.commitTime, command.gid),
          command.position.version,
        );
      case 'rollback':
        this.packetProgress.closed();
        this.packetOpen = false;
        return this.work(target.rollback(), command.version);
      case 'advance':
        return this.work(target.advance(command.position), command.position.version);
      case 'read-position':
        return this.guard(target.position(), command.version).then(
          (position): ApplyEvent => ({ type: 'done', position }),
          failed,
        );
    }
  }

  /** Commands that nothing answers: reports to the agent and the participant, window marks. */
  private effect(command: ApplyCommand): void {
    const { host } = this;
    switch (command.type) {
      case 'applied':
        host.applied(command.position, command.packets, command.rows);
        return;
      case 'status':
        host.status(command.status);
        return;
      case 'duplicates':
        host.duplicates(command.count);
        return;
      case 'note-skipped':
        host.note('skipped packets it already had', {
          duplicates: command.count,
          version: command.version,
          event: 'duplicates-skipped',
        });
        return;
      case 'note-delta':
        this.noteDelta(command.position);
        return;
      case 'request-rewind':
        host.needsRewind(command.position);
        return;
      case 'cut-newest':
        this.window.cutNewest();
        return;
      case 'begin':
        this.packetOpen = true;
        this.target.begin(command.from);
        return;
      case 'take-prepare':
        this.participant.take();
        return;
      case 'vote-no':
        this.participant.answer({ vote: 'no', reason: command.reason });
        return;
      default:
        throw new Error(`replica apply: ${command.type} is not an effect`);
    }
  }

  private applyBatch(command: Extract<ApplyCommand, { type: 'apply-batch' }>) {
    const packets = packetsOf(command.parts);
    const { position, commitTime, gid } = command;
    const began = performance.now();
    const work = this.target.applyBatch(packets, position, commitTime, gid);
    if (gid !== undefined) return this.work(work, position.version);
    return this.guard(work, position.version).then((): ApplyEvent => {
      this.host.timed?.((performance.now() - began) / 1000, commitTime);
      return DONE;
    }, failed);
  }

  private work(work: Promise<void>, version: number): Promise<ApplyEvent> {
    return this.guard(work, version).then(() => DONE, failed);
  }

  private guard<T>(work: Promise<T>, version: number): Promise<T> {
    return guardStep(this.stepOwner, work, version);
  }

  private waitFor(wait: Exclude<LookWait, 'none'>): Promise<unknown> {
    if (wait === 'window') return this.window.changed();
    if (this.deadline?.batch !== wait.batch)
      this.deadline = { batch: wait.batch, passed: sleep(wait.ms) };
    return Promise.race([this.window.changed(), this.deadline.passed]);
  }

  private look(seq: number | null): ApplyEvent {
    return this.host.stopping ? STOP : lookAt(this.window, seq, Date.now());
  }

  private gate(version: number, seq: number): ApplyEvent {
    if (this.host.stopping) return STOP;
    const { window, participant } = this;
    return {
      type: 'gate',
      epoch: window.epoch,
      now: Date.now(),
      pending: participant.pending,
      committedThrough: participant.committedThrough,
      roundCommitted: this.host.roundCommitted(version),
      cut: window.cutAfter(seq),
      more: window.at(seq + 1) !== undefined,
    };
  }

  /**
   * The replica was found busy: it counts as busy (see {@link busy}) and,
   * between packets, lets go of the window. Mid large packet it keeps its
   * cursor: let go, the others' cursors pass the packet, its parts not yet
   * read are evicted, and the busy statement's work is rolled back and redone
   * once it ends — for ever while the primary writes. It then holds the
   * others at the window's cap instead, until it lands or is marked stale.
   */
  private foundBusy(): void {
    this.heardWhenBusy = this.target.heard?.() ?? 0;
    if (!this.packetOpen) this.letGo();
  }

  /**
   * A replica busy with a long statement is slow: it stops holding the window
   * (which then holds the other replicas no longer; with bus, its pump stops
   * reading ahead) until the applier looks at the window again.
   */
  private letGo(): void {
    this.letGoOf = true;
    this.window.setCursor(this.name, null);
  }

  /** Takes the window again after {@link letGo}; parts gone meanwhile are re-read (a stale cursor). */
  private retake(seq: number | null): void {
    if (!this.letGoOf || seq === null || seq < this.window.start) return;
    this.letGoOf = false;
    this.window.setCursor(this.name, seq);
  }

  /** Logs the delta a replica behind the stream's head is about to receive from memory. */
  private noteDelta(position: ReplicaPosition): void {
    const head = this.window.newestVersion;
    const seq = this.window.locate(position.version);
    if (head !== null && head > position.version && seq !== null) {
      this.host.note('behind: delta served from memory', {
        from: position.version + 1,
        to: head,
        event: 'delta-from-memory',
      });
    }
  }

  /** The window position after `version`, registering the cursor; null when a rewind is needed. */
  private locate(version: number): number | null {
    const seq = this.window.locate(version);
    this.letGoOf = false;
    this.heardWhenBusy = null;
    this.window.setCursor(this.name, seq);
    return seq;
  }
}

/** What the window shows at `seq`, read in one go (no await in between). */
export function lookAt(window: DeltaSource, seq: number | null, now: number): WindowLook {
  return {
    type: 'look',
    epoch: window.epoch,
    now,
    part: seq === null ? undefined : window.at(seq),
    start: window.start,
    cut: seq === null ? null : window.cutAfter(seq),
    more: seq !== null && window.at(seq + 1) !== undefined,
    cutBefore: seq === null ? null : window.cutAfter(seq - 1),
    newestVersion: window.newestVersion,
    idle: window.idlePoint,
  };
}

type BatchPackets = Parameters<ReplicaTarget['applyBatch']>[0];

/** The last batch's packets, for the next replica that applies the very same parts. */
let lastBatch: { parts: readonly PacketPart[]; packets: BatchPackets } | null = null;

/**
 * What the target applies of a batch's parts. Replicas in step apply the same
 * parts (the window cuts their batches alike): the packets are built once for
 * all of them, not one object per packet per replica, held through the apply.
 */
function packetsOf(parts: readonly PacketPart[]): BatchPackets {
  if (lastBatch && sameParts(lastBatch.parts, parts)) return lastBatch.packets;
  const packets = parts.map((p) => ({
    changes: p.changes,
    version: p.header.version,
    lsn: p.header.lsn,
  }));
  lastBatch = { parts, packets };
  return packets;
}

function sameParts(a: readonly PacketPart[], b: readonly PacketPart[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function failed(error: unknown): ApplyEvent {
  return { type: 'failed', reason: (error as Error)?.message ?? String(error), error };
}

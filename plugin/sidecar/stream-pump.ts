import { LockstepError } from '../ports/lockstep-error.js';
import type { PrimaryStream } from '../primary/primary-stream.js';
import { type PacketPart, type ResumePoint, ZERO_LSN } from '../protocol/index.js';
import type { ReplicaAgent, ReplicaPosition } from '../replica/replica-agent.js';
import type { SidecarParts } from './sidecar-parts.js';
import type { SidecarState } from './sidecar-state.js';
import type { SlotKeeper } from './slot-keeper.js';

/**
 * Reads the primary stream into the shared window: from the lowest position
 * the replicas hold, again from an older one when a replica asks for a
 * rewind, not at all while paused.
 */
export class StreamPump {
  /** When an idle point was last handed to the agents. */
  private idleNoted = 0;

  constructor(
    private readonly parts: SidecarParts,
    private readonly state: SidecarState,
    private readonly slots: SlotKeeper,
  ) {}

  /** A replica needs packets no longer in the window: the stream restarts from its position. */
  requestRewind(replica: string, position: ReplicaPosition): void {
    const { state } = this;
    if (state.stale.has(replica)) return;
    if (state.rewindTo && state.rewindTo.version <= position.version) return;
    this.parts.log.info(
      { replica, version: position.version, event: 'rewind' },
      'replica needs packets no longer in memory',
    );
    state.rewindTo = position;
    state.rewindBy = replica;
    state.interrupt.notify();
  }

  /**
   * Hands the stream's latest idle point to the agents, at most once a second
   * (each stores it: one small write per replica), so a quiet stream over a
   * busy primary releases the WAL of the tables it does not replicate.
   */
  noteIdle(): void {
    const idle = this.state.stream?.idlePoint;
    if (!idle || Date.now() - this.idleNoted < 1_000) return;
    this.idleNoted = Date.now();
    this.state.window.markIdle(idle);
  }

  /** Streams until the activation stops: reconnects after a failure, restarts for a rewind, rests while paused. */
  async run(): Promise<void> {
    const { state } = this;
    let delay = 500;
    while (!state.stopping) {
      // The flag is checked and the wait registered in one step: a resume cannot slip in between.
      while (state.pausedSince && !state.stopping) await state.resumed.wait();
      const resume = await this.resumePoint();
      if (!resume) return;
      state.rewindTo = null;
      const stream = await this.connect(resume);
      if (!stream) {
        await state.backoff(delay);
        delay = Math.min(delay * 2, 30_000);
        continue;
      }
      delay = 500;
      await this.follow(stream, resume, delay);
    }
  }

  /** Where the stream starts: the lowest position among the replicas that can take packets now. */
  private async resumePoint(): Promise<ResumePoint | null> {
    const { state } = this;
    for (;;) {
      if (state.stopping) return null;
      // A stale replica's agent does not run: it is not waited for.
      const waiting = state.agents.filter(
        (a) => a.state === 'starting' && !state.stale.has(a.name),
      );
      let checked = waiting.length === 0;
      if (checked) {
        try {
          await this.slots.markGone();
        } catch (error) {
          // Fail closed: no stream starts from a point not checked against the slot.
          checked = false;
          this.parts.log.warn(
            { err: (error as Error).message, event: 'resume-unchecked' },
            'cannot check positions against the slot',
          );
        }
      }
      const positioned = state.agents.filter((a) => a.position && !state.stale.has(a.name));
      const healthy = positioned.filter((a) => a.state !== 'halted' && a.state !== 'unresponsive');
      // A failed replica leaves its state only by applying: when every replica failed, the
      // stream starts from theirs, or a replica that is back would wait for packets for ever.
      const known = healthy.length > 0 ? healthy : positioned;
      if (known.length > 0 && checked) return this.lowest(known);
      await state.replicaChanged.wait(checked || waiting.length > 0 ? 100 : 1_000);
    }
  }

  /** The lowest of the replicas' positions, or the rewind asked for when that is lower still. */
  private lowest(known: readonly ReplicaAgent[]): ReplicaPosition {
    const { state } = this;
    let low = (known[0] as ReplicaAgent).position as ReplicaPosition;
    for (const a of known)
      if ((a.position as ReplicaPosition).version < low.version)
        low = a.position as ReplicaPosition;
    // A rewind asked by a replica found stale (or gone) since is void: its position may be
    // before the slot's, and a stream started there would number packets wrongly for all.
    const asker = state.agents.find((a) => a.name === state.rewindBy);
    if (!asker || state.stale.has(asker.name)) state.rewindTo = null;
    if (state.rewindTo && state.rewindTo.version < low.version) low = state.rewindTo;
    return low;
  }

  /** Opens the stream from `resume`; null (logged) when the primary refuses or cannot be reached. */
  private async connect(resume: ResumePoint): Promise<PrimaryStream | null> {
    const { state } = this;
    try {
      return await this.parts.openStream(resume, this.slots.confirmable() ?? ZERO_LSN);
    } catch (error) {
      state.streaming = false;
      state.statusDirty = true;
      const fix = error instanceof LockstepError ? error.fix : undefined;
      this.parts.log.error(
        { err: (error as Error).message, fix, event: 'stream-refused' },
        'cannot stream from the primary',
      );
      return null;
    }
  }

  /** Pumps an open stream until it ends, fails, or is interrupted; then stops it. */
  private async follow(stream: PrimaryStream, resume: ResumePoint, delay: number): Promise<void> {
    const { state } = this;
    state.stream = stream;
    state.window.reset();
    if (state.confirmed) stream.confirm(state.confirmed);
    state.streaming = true;
    state.statusDirty = true;
    this.parts.log.info(
      { version: resume.version, lsn: resume.lsn, event: 'stream-started' },
      'streaming from the slot',
    );
    try {
      await this.pumpParts(stream);
    } catch (error) {
      this.parts.log.error(
        { err: (error as Error).message, event: 'stream-failed' },
        'the primary stream failed',
      );
      await state.backoff(delay);
    } finally {
      state.streaming = false;
      state.statusDirty = true;
      state.stream = null;
      await stream.stop();
    }
  }

  /** A rewind, a pause or a stop ends the stream being read. */
  private interrupted(): boolean {
    const { state } = this;
    return state.rewindTo !== null || state.stopping || state.pausedSince !== null;
  }

  /** Moves parts from the stream into the window until interrupted (or the stream ends). */
  private async pumpParts(stream: PrimaryStream): Promise<void> {
    const { state } = this;
    let packetRows = 0;
    for (;;) {
      if (this.interrupted()) break;
      // Parts already assembled are taken without a promise each; only an empty queue is awaited.
      let part: PacketPart | null | undefined = stream.poll();
      if (part === undefined) part = await state.interrupt.race(stream.next(), null);
      if (!part) break;
      if (!state.window.hasRoom()) {
        // A full window waits for the replicas; a rewind, pause or stop must not wait with it
        // (a replica that needs a rewind may be what the others wait for, at a two-phase gate).
        if (!this.interrupted()) await state.interrupt.race(state.window.waitForRoom(), undefined);
        // The part is dropped: the restarted stream reads it again.
        if (this.interrupted()) break;
      }
      state.window.push(part);
      packetRows = (part.index === 0 ? 0 : packetRows) + part.changes.length;
      if (part.final?.phase === 'two') {
        state.coordinator.offer({
          version: part.header.version,
          lsn: part.header.lsn,
          rows: packetRows,
          whole: part.index === 0,
        });
      }
      // The header itself: its commit time is formatted only if status reads it.
      if (part.final) state.head = part.header;
    }
  }
}

import type { TwoPhasePacket } from '../coordinator/two-phase-coordinator.js';
import type { PacketLog } from '../ports/packet-bus.js';
import type { PrimaryStream } from '../primary/primary-stream.js';
import {
  lsnToBigInt,
  type PacketHeader,
  type PacketPart,
  type ResumePoint,
  ZERO_LSN,
} from '../protocol/index.js';
import { Signal } from '../support/signal.js';
import { batchable, MessageBatch } from './bus-batch.js';
import { type BusMessage, busMessages, type PacketCursor } from './bus-messages.js';
import { BusPipeline } from './bus-pipeline.js';
import { publishFailure } from './bus-publish-failure.js';
import type { BusPublisherParts, RecordedHead } from './bus-publisher-parts.js';
import type { BusPublisherSnapshot, PublishFailure } from './bus-publisher-snapshot.js';
import { type BusResume, busResume } from './bus-resume.js';
import { logResume } from './bus-resume-log.js';
import { attemptCoordinatorLock } from './lock-attempt.js';
import { PauseFollower } from './pause-follower.js';
import { SyncedAcks } from './synced-acks.js';

export type { BusPublisherParts, RecordedHead } from './bus-publisher-parts.js';

/** First and longest wait before publishing is tried again after a failure (ms). */
const RETRY_MS = [500, 30_000] as const;
/** How often the pause flag is read again, should a notification have been missed (ms). */
const PAUSE_CHECK_MS = 5_000;

/**
 * `lockstep run` with `bus`: publishes every packet of the primary stream to
 * the bus once, in order, and confirms the slot up to a packet once JetStream
 * acknowledged all of it and the servers had time to write it to disk
 * (`bus.serverSyncInterval`, {@link SyncedAcks}). On every start (and after any failure) it reads
 * where the bus ends and re-derives from there; each message names the
 * sequence it follows, so nothing is stored twice and no gap is stored.
 */
export class BusPublisher {
  /** Packets published by this process. */
  published = 0;
  /** Fragments of changes but their last acknowledged in this process (the `mid-change` fault point). */
  private midChanges = 0;
  /** The last packet on the bus as this process knows it. */
  head: PacketHeader | null = null;
  streaming = false;
  private stopping = false;
  /** start() was called: until the lock is held, it stands by. */
  private started = false;
  /** Where the bus ended when publishing last started. */
  private resumedAt = 0;
  private readonly failures: Record<PublishFailure, number> = {
    'bus-refused': 0,
    'bus-leader-behind': 0,
    'bus-unavailable': 0,
  };
  private readonly wake = new Signal();
  private running: Promise<void> | null = null;
  private packetLog: PacketLog | null = null;
  /** The primary stream being published, while it is. */
  private stream: PrimaryStream | null = null;
  /** When the head was last recorded (ms). */
  private headRecorded = 0;
  /** The head as last recorded: the slot is never confirmed past it. */
  private recorded: RecordedHead | null = null;
  /** The wait before publishing is tried again after a failure (ms); back to the first once JetStream acknowledged. */
  private retryDelay: number = RETRY_MS[0];
  /** The last packet whole on the bus whose head is not recorded (nor the slot confirmed) yet. */
  private unconfirmed: PacketHeader | null = null;
  /** Two-phase packets sent whose last message is not stored yet, by version. */
  private readonly twoPhaseSent = new Map<number, TwoPhasePacket>();
  /** `lockstep pause`: the stream ends (the lock is kept), `resume` starts it again from where the bus ends. */
  private readonly pause: PauseFollower;
  /** Recorded heads waiting for the bus servers' next sync before the slot is confirmed to them. */
  private readonly synced: SyncedAcks;

  constructor(private readonly parts: BusPublisherParts) {
    this.synced = new SyncedAcks(parts.serverSyncIntervalMs);
    parts.lock.onLost(() => this.wake.notify());
    this.pause = new PauseFollower({
      read: () => parts.pausedSince(),
      signal: parts.pauses,
      log: parts.log,
      changed: (since) => {
        this.wake.notify();
        // The slot is released at once, not once what is in flight settled: with the bus
        // hung that takes an acknowledgement timeout, and `lockstep pause` waits no longer.
        if (since) void this.stream?.stop().catch(() => undefined);
      },
    });
  }

  /** Waits for the coordinator lock (standing by), then publishes; false when stopped while waiting. */
  async start(): Promise<boolean> {
    this.started = true;
    // Read before anything streams: a publisher started while paused stays paused.
    await this.pause.follow();
    this.pause.listen();
    if (!(await this.acquire())) return false;
    this.running = this.run();
    return true;
  }

  /** Takes the coordinator lock, standing by while another sidecar holds it; false once stopping. */
  private async acquire(): Promise<boolean> {
    const { lock, log } = this.parts;
    let told = false;
    for (;;) {
      if (this.stopping) break;
      const taken = await attemptCoordinatorLock(lock, log);
      if (taken) break;
      // A failed attempt (null) is logged as such: it does not say another sidecar is active.
      if (taken === false && !told) {
        log.info({ event: 'standby' }, 'another sidecar is active: standing by');
        told = true;
      }
      await this.wake.wait(1_000);
    }
    return !this.stopping;
  }

  /** What it knows now (no query): active only while it holds the lock and publishes. */
  snapshot(): BusPublisherSnapshot {
    const active = this.running !== null && this.parts.lock.held;
    return {
      role: this.stopping ? 'stopping' : active ? 'active' : this.started ? 'standby' : 'starting',
      streaming: this.streaming,
      paused: this.pause.since !== null,
      acknowledgedVersion: Math.max(this.head?.version ?? 0, this.resumedAt),
      confirmedVersion: this.recorded?.version ?? null,
      published: this.published,
      failures: { ...this.failures },
    };
  }

  /** Stops publishing; the slot stays confirmed where the bus servers had synced (acknowledged heads after it are not). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.notify();
    await this.running;
    await this.pause.close().catch(() => undefined);
    await this.packetLog?.close().catch(() => undefined);
    // The idle point recorded last, when the slot may already be confirmed to it.
    const head = this.recorded?.version === this.head?.version ? this.recorded : this.head;
    // A deposed publisher's head is stale: its successor's is newer.
    if (head && this.parts.lock.held) await this.parts.recordHead(head).catch(() => undefined);
    await this.parts.close();
    await this.parts.lock.release();
  }

  /** Publishes while this process holds the lock; stands by again when it is lost. */
  private async run(): Promise<void> {
    while (!this.stopping) {
      if (!this.parts.lock.held) {
        this.parts.log.error(
          { event: 'lock-lost' },
          'the coordinator lock is lost: publishing stopped',
        );
        if (!(await this.acquire())) return;
      }
      if (this.pause.since) {
        await this.rest();
        continue;
      }
      try {
        await this.publishFromEnd();
        this.retryDelay = RETRY_MS[0];
      } catch (error) {
        this.streaming = false;
        this.report(error as Error);
        await this.wake.wait(this.retryDelay);
        this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MS[1]);
      }
    }
  }

  /** Fails closed: nothing is confirmed that JetStream did not acknowledge; the next try reads the bus again. */
  private report(error: Error): void {
    const { event, fields, message } = publishFailure(error);
    this.failures[event]++;
    this.parts.log.error({ ...fields, event }, message);
  }

  /**
   * Paused: no stream, nothing published, the lock kept (a standby stays
   * one). Rounds already offered go on, as in process; the flag is read again
   * every few seconds should a notification have been missed.
   */
  private async rest(): Promise<void> {
    while (this.pause.since && !this.stopping && this.parts.lock.held) {
      await this.wake.wait(PAUSE_CHECK_MS);
      this.pause.followEvery(PAUSE_CHECK_MS);
    }
  }

  /**
   * Records `header` as the stream's head, then confirms the slot to it once
   * the bus servers had time to sync it. The head is written first: once
   * retention empties the bus, it is where the numbering goes on from, and
   * the slot must never be confirmed past it.
   */
  private async confirm(stream: PrimaryStream, header: RecordedHead): Promise<void> {
    // Lost while acknowledgements were pending (e.g. a paused process): the successor records the head.
    if (!this.parts.lock.held) return;
    await this.parts.recordHead(header);
    this.recorded = header;
    this.headRecorded = Date.now();
    this.synced.add(performance.now(), header.lsn);
    this.confirmSynced(stream);
  }

  /** Confirms the slot to the newest head the bus servers have had time to write to disk. */
  private confirmSynced(stream: PrimaryStream): void {
    const lsn = this.synced.due(performance.now());
    if (lsn && this.parts.lock.held) stream.confirm(lsn);
  }

  /** Reads where the bus ends, streams from there and publishes until interrupted. */
  private async publishFromEnd(): Promise<void> {
    this.packetLog ??= await this.parts.openLog();
    const log = this.packetLog;
    const walk = { read: 0 };
    const plan = await busResume(
      log,
      () => this.parts.startPoint(),
      () => this.parts.slotConfirmedLsn(),
      walk,
      this.parts.packetsBetween,
    );
    logResume(this.parts.log, plan);
    this.resumedAt = plan.resume.version;
    // When the bus got the resume point is unknown (another process, a moment ago): it waits a whole interval.
    this.synced.restart(performance.now(), plan.resume.lsn);
    const durable = this.synced.due(performance.now()) ?? this.synced.released ?? ZERO_LSN;
    const stream = await this.parts.openStream(plan.resume, durable);
    this.stream = stream;
    // Paused while it opened: the notification found no stream to stop.
    if (this.pause.since) await stream.stop();
    this.streaming = true;
    this.parts.log.info(
      {
        version: plan.resume.version,
        lsn: plan.resume.lsn,
        sequence: plan.lastSequence,
        walked: walk.read,
        event: 'bus-publishing',
      },
      'publishing to the bus',
    );
    try {
      await this.pump(stream, log, plan);
    } finally {
      this.streaming = false;
      this.stream = null;
      await stream.stop();
    }
  }

  /**
   * Records the stream's idle point as the head, then confirms the slot to
   * it, at most once a second: the WAL of unreplicated writes, checkpoints
   * and running-xacts records after the last packet is released. Every
   * packet assembled before it is on the bus (none waits in the stream).
   */
  private async confirmIdle(stream: PrimaryStream, resume: ResumePoint): Promise<void> {
    const idle = stream.idlePoint;
    if (!idle || Date.now() - this.headRecorded < 1_000) return;
    // A part taken by a wait still pending is not on the bus: its packet's idle point waits.
    const onBus = Math.max(this.head?.version ?? 0, resume.version);
    if (idle.version !== onBus) return;
    const last = this.recorded?.version === onBus ? this.recorded : null;
    if (lsnToBigInt(idle.lsn) <= lsnToBigInt(last?.lsn ?? resume.lsn)) return;
    // The commit time stays the packet's (unknown: the recorded one is kept); `status` measures lag from it.
    await this.confirm(stream, { ...idle, commitTime: last?.commitTime ?? null });
  }

  /**
   * Publishes the stream's parts with several messages in flight. Packets
   * count as published, in order, once every message up to their last is
   * stored; the head is recorded and the slot confirmed when nothing is in
   * flight and the stream is caught up, and at most once a second otherwise.
   * A failure stops sending; once everything sent has settled, the packets
   * whole by then are confirmed and the failure thrown: the next try reads
   * where the bus really ends.
   */
  private async pump(stream: PrimaryStream, log: PacketLog, plan: BusResume): Promise<void> {
    const onStored = (message: BusMessage) => {
      if (message.midChange) this.parts.fault?.('mid-change', ++this.midChanges);
    };
    const pipeline = new BusPipeline(log, plan.lastSequence, undefined, onStored, plan.kept);
    this.unconfirmed = null;
    let cursor: PacketCursor | null = plan.cursor;
    /** A wait for the next part that outlived a wake-up: it is taken before anything else, to keep the order. */
    let pending: Promise<PacketPart | null> | null = null;
    /** A part polled for a batch it could not join: the next one to publish. */
    let carried: PacketPart | undefined;
    /** Changes of the packet being published, through its last part. */
    let packetRows = 0;
    this.twoPhaseSent.clear();
    try {
      // A pause ends the stream: what is in flight settles, parts not sent are re-derived on resume.
      while (!this.stopping && this.parts.lock.held && !pipeline.failure && !this.pause.since) {
        this.pause.followEvery(PAUSE_CHECK_MS);
        await this.tookWhole(stream, pipeline, false);
        let part: PacketPart | null | undefined = carried ?? (pending ? undefined : stream.poll());
        carried = undefined;
        if (part === undefined) {
          // Caught up: one head write (and slot confirmation) for every packet stored so far.
          if (pipeline.empty) await this.tookWhole(stream, pipeline, true);
          if (pipeline.empty) await this.confirmIdle(stream, plan.resume);
          pending ??= stream.next();
          // Woken by an acknowledgement, else a tick a second (an idle point is confirmed while nothing comes).
          const changed = pipeline.changed(1_000).then(() => undefined);
          part = await this.wake.race(Promise.race([pending, changed]), undefined);
          if (part === undefined) continue;
          pending = null;
        }
        if (!part) break;
        const { header } = part;
        if (batchable(part, cursor)) {
          const batch = new MessageBatch(log.maxBody);
          if (batch.add(part)) {
            carried = await this.sendBatch(batch, stream, pipeline);
            cursor = null;
            continue;
          }
        }
        if (cursor?.version !== header.version)
          cursor = { version: header.version, nextPart: 0, seen: 0, stored: 0 };
        packetRows = (part.index === 0 ? 0 : packetRows) + part.changes.length;
        if (part.final?.phase === 'two')
          this.twoPhaseSent.set(header.version, twoPhase(part, packetRows));
        // Only the packet's last message is final. Packets before it are confirmed meanwhile: a change
        // sent in fragments may take long, and WAL (and a restart's resume point) should not wait for it.
        for (const message of busMessages(part, cursor, log.maxBody)) {
          await pipeline.send(message, message.position.final ? [header] : []);
          await this.tookWhole(stream, pipeline, false);
        }
      }
    } finally {
      // Nothing of this run may land after the next one starts: every message sent settles first.
      await pipeline.settle();
    }
    if (this.parts.lock.held) await this.tookWhole(stream, pipeline, true);
    if (pipeline.failure) throw pipeline.failure;
  }

  /**
   * Sends `batch` with the whole packets the stream already holds after it
   * (never waiting for more: batching adds no latency), and returns the part
   * polled that could not join it.
   */
  private async sendBatch(
    batch: MessageBatch,
    stream: PrimaryStream,
    pipeline: BusPipeline,
  ): Promise<PacketPart | undefined> {
    let left: PacketPart | undefined;
    for (;;) {
      const more = stream.poll();
      if (more === undefined) break;
      if (!batchable(more, null) || !batch.add(more)) {
        left = more;
        break;
      }
    }
    const { message, packets } = batch.message();
    await pipeline.send(message, packets);
    return left;
  }

  /** Counts the packets now whole on the bus; records the head and confirms the slot when `now` or a second passed. */
  private async tookWhole(stream: PrimaryStream, pipeline: BusPipeline, now: boolean) {
    for (const header of pipeline.takeWhole()) {
      // publishFromEnd returns only when stopped: a failure after this ack is a new outage, not the same one.
      this.retryDelay = RETRY_MS[0];
      this.published++;
      this.head = header;
      this.unconfirmed = header;
      this.parts.fault?.('after-publish', this.published);
      const round = this.twoPhaseSent.get(header.version);
      this.twoPhaseSent.delete(header.version);
      if (round) this.parts.onTwoPhasePacket?.(round);
    }
    this.confirmSynced(stream);
    if (!this.unconfirmed || (!now && Date.now() - this.headRecorded < 1_000)) return;
    await this.confirm(stream, this.unconfirmed);
    this.unconfirmed = null;
  }
}

/** The round a two-phase packet's last part asks for; `rows` counts the changes of all its parts. */
function twoPhase(part: PacketPart, rows: number): TwoPhasePacket {
  const { version, lsn } = part.header;
  return { version, lsn, rows, whole: part.index === 0 };
}

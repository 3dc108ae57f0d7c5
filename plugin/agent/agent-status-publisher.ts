import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { AgentStatusWriter } from '../ports/agent-status-bus.js';
import type { LockstepError } from '../ports/lockstep-error.js';
import type { AgentStatusRecord } from '../protocol/agent-status-record.js';
import type { MigrationSummary } from '../protocol/migration-summary.js';
import { shownReplicaState } from '../protocol/shown-replica-state.js';
import type { ReplicaAgent } from '../replica/replica-agent.js';

/** What the publisher reads of the running agent. */
export interface AgentStatusSource {
  readonly replica: string;
  /** The replica machine while this process holds the replica's lock (a standby reports nothing). */
  readonly current: ReplicaAgent | null;
  /** The error that ends the agent, once there is one. */
  readonly halted: LockstepError | null;
  /** Primary commit time of the oldest packet held and not applied (null: none). */
  readonly pendingSince?: string | null;
}

/** Read once: the host name is a system call, and a report is made many times a second. */
const HOST = hostname();

/** Default time between heartbeats (ms). */
export const HEARTBEAT_MS = 2_000;

/**
 * Shortest time between two reports that differ only in position and
 * counters (ms). Every applied batch is such a change: reported each time,
 * a busy agent wrote the bucket (a replicated write on every NATS node)
 * tens of times a second: about a sixth of its CPU. At 250 ms, any agent
 * applying four batches a second or more still wrote 4 a second: at 64
 * agents, most of what the NATS servers did under a light load.
 */
export const POSITION_EVERY_MS = 1_000;

/**
 * Publishes the agent's report on every change of state or error at once,
 * a new position at most every {@link POSITION_EVERY_MS}, and at least every
 * heartbeat. Never blocks applying: one write in flight at a time, the
 * newest report replacing one not sent yet; a failed write is logged once
 * per outage and the next report tried.
 */
export class AgentStatusPublisher {
  private beats = 0;
  private pending: AgentStatusRecord | null = null;
  private sending: Promise<void> | null = null;
  private failing = false;
  private timer: NodeJS.Timeout | null = null;
  private last: { key: string; at: string } = { key: '', at: new Date().toISOString() };
  /** State and error of the last report, and when it was made (ms): what paces position-only reports. */
  private reported = { key: '', at: Number.NEGATIVE_INFINITY };
  /** A position-only report held back until its pace allows it. */
  private held: NodeJS.Timeout | null = null;
  /** The last report sent or queued (also what the metrics read). */
  latest: AgentStatusRecord | null = null;
  /** lockstep gids prepared on the replica, as last listed. */
  inDoubt: AgentStatusRecord['inDoubt'] = [];
  /** The replica's migration history, read right after `inDoubt` (null: not read). */
  migrations: MigrationSummary | null = null;
  /**
   * Whether the coordinator said the stream is paused (`lockstep pause`): a
   * following replica is then reported `paused`, as in process. False
   * without its answer: the agent cannot tell a pause from a quiet primary.
   */
  streamPaused = false;

  constructor(
    private readonly writer: AgentStatusWriter,
    private readonly source: AgentStatusSource,
    private readonly log: Logger,
    readonly everyMs = HEARTBEAT_MS,
    private readonly positionEveryMs = POSITION_EVERY_MS,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.changed(), this.everyMs);
    this.timer.unref();
  }

  /**
   * Something changed (or a heartbeat is due): a new report goes out,
   * replacing one not sent yet; a change of position alone waits for its pace.
   */
  changed(): void {
    const { current: agent, halted } = this.source;
    const key = `${halted?.problem ?? ''}\u0000${this.shownState()}\u0000${agent?.lastError?.problem ?? ''}`;
    if (key === this.reported.key) {
      if (this.held) return;
      // A monotonic clock: a wall clock stepped back would hold every report (heartbeats too).
      const wait = this.reported.at + this.positionEveryMs - performance.now();
      if (wait > 0) {
        this.held = setTimeout(() => {
          this.held = null;
          this.changed();
        }, wait);
        this.held.unref();
        return;
      }
    }
    if (this.held) clearTimeout(this.held);
    this.held = null;
    const record = this.record();
    if (!record) return;
    this.reported = { key, at: performance.now() };
    this.latest = record;
    this.pending = record;
    this.sending ??= this.send().finally(() => {
      this.sending = null;
    });
  }

  /** Stops the heartbeats; sends the final report, waiting at most `ms`. */
  async stop(ms: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.held) clearTimeout(this.held);
    this.held = null;
    // The final report goes out whatever its pace.
    this.reported.at = Number.NEGATIVE_INFINITY;
    this.changed();
    const flushed = this.sending ?? Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([flushed, new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private async send(): Promise<void> {
    for (let record = this.pending; record; record = this.pending) {
      this.pending = null;
      try {
        await this.writer.put(record);
        if (this.failing)
          this.log.info(
            { replica: record.replica, event: 'agent-status-resumed' },
            'status reports reach the bus again',
          );
        this.failing = false;
      } catch (error) {
        if (!this.failing)
          this.log.warn(
            {
              replica: record.replica,
              err: (error as Error).message,
              event: 'agent-status-failed',
            },
            'cannot publish status to the bus: applying goes on',
          );
        this.failing = true;
      }
    }
  }

  /** The replica's state as reported: its agent's, `paused` while it follows a paused stream. */
  private shownState(): string {
    const { current: agent, halted } = this.source;
    if (halted) return haltedState(halted);
    return agent ? shownReplicaState(agent.state, this.streamPaused) : 'halted';
  }

  /** The report now; null while this process does not hold the replica (and has not halted). */
  private record(): AgentStatusRecord | null {
    const { current: agent, halted, replica } = this.source;
    if (!agent && !(halted && this.latest)) return null;
    const state = this.shownState();
    const failure = halted ?? agent?.lastError ?? null;
    const error = failure && {
      problem: failure.problem,
      fix: failure.fix,
      table: failure.table ?? null,
    };
    const position = agent
      ? agent.position
      : this.latest && { version: this.latest.version, lsn: this.latest.lsn };
    const now = new Date().toISOString();
    const key = JSON.stringify([state, position?.version, error?.problem]);
    if (key !== this.last.key) this.last = { key, at: now };
    return {
      replica,
      version: position?.version ?? null,
      lsn: position?.lsn ?? null,
      state,
      error,
      agent: { host: HOST, pid: process.pid },
      inDoubt: this.inDoubt,
      ...(this.migrations ? { migrations: this.migrations } : {}),
      packetsApplied: agent?.packetsApplied ?? this.latest?.packetsApplied ?? 0,
      rowsApplied: agent?.rowsApplied ?? this.latest?.rowsApplied ?? 0,
      applyErrors: agent?.applyErrors ?? this.latest?.applyErrors ?? 0,
      commitsNotLanded: agent?.commitsNotLanded ?? this.latest?.commitsNotLanded ?? 0,
      // Halted, the replica applies nothing more: its oldest unapplied packet stays the same.
      pendingSince: agent
        ? (this.source.pendingSince ?? null)
        : (this.latest?.pendingSince ?? null),
      heartbeat: { at: now, count: ++this.beats, everyMs: this.everyMs },
      updatedAt: this.last.at,
    };
  }
}

/**
 * An agent that ended because the bus lacks what the replica needs is stale:
 * only a fresh copy brings it back. Any other halt stays halted, though its
 * fix may name a resync as a last resort (a commit that did not land, a
 * migration the replica missed, a message that failed its signature check):
 * those need an operator's look first, and stale would invite a re-copy.
 */
function haltedState(error: LockstepError): string {
  return error.reason === 'retention-lost' ? 'stale' : 'halted';
}

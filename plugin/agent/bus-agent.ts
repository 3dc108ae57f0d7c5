import type { Logger } from 'pino';
import type { LockstepError } from '../ports/lockstep-error.js';
import type { PacketReader, ReplicaLockPort } from '../ports/packet-reader.js';
import { logReplicaState } from '../replica/log-replica-state.js';
import { ReplicaAgent, type ReplicaAgentOptions } from '../replica/replica-agent.js';
import type { ReplicaTarget } from '../replica/replica-target.js';
import { Signal } from '../support/signal.js';
import { AgentRoundServer, type AgentRoundsWiring } from './agent-round-server.js';
import { AgentWindow } from './agent-window.js';
import { BusPump } from './bus-pump.js';

/** What a bus agent is made of (wired by `lockstep agent`). */
export interface BusAgentParts {
  readonly target: ReplicaTarget;
  readonly packets: PacketReader;
  readonly lock: ReplicaLockPort;
  readonly log: Logger;
  readonly agent: ReplicaAgentOptions;
  /** Changes the agent's window holds (its memory bound). */
  readonly windowChanges: number;
  /** How often a standby agent tries the lock, and the holder checks it (ms). */
  readonly lockCheckMs?: number;
  /** The replica's state, position or error changed (the agent's status report). */
  readonly changed?: () => void;
  /** Two-phase rounds with the coordinator over the bus. */
  readonly rounds: AgentRoundsWiring;
}

const LOCK_CHECK_MS = 2_000;

/**
 * `lockstep agent`: applies one replica's packets from the bus with the same
 * replica machine as the sidecar. It first takes the replica's agent lock (a
 * second agent stands by until the holder dies), then reads the bus from the
 * version after the replica's own and applies. It ends when stopped, or with
 * an error it cannot get past (the bus no longer holds what the replica needs).
 */
export class BusAgent {
  private stopping = false;
  private readonly wake = new Signal();
  private lockLost = false;
  private fatal: LockstepError | null = null;
  /** When the coordinator was last told the replica waits at a two-phase packet: one word per version and second. */
  private told = { version: -1, at: 0 };
  /** The version the replica applies before a fatal error ends the agent (null: at once). */
  private fatalAfter: number | null = null;
  /** The replica machine while this process holds the lock. */
  current: ReplicaAgent | null = null;
  /** The packets read for it. */
  private window: AgentWindow | null = null;

  constructor(private readonly parts: BusAgentParts) {
    parts.lock.onLost(() => {
      this.lockLost = true;
      this.wake.notify();
    });
  }

  /** The error that ends the agent, once there is one. */
  get halted(): LockstepError | null {
    return this.fatal;
  }

  get replica(): string {
    return this.parts.target.node;
  }

  /** Commit time of the oldest packet held and not applied (null: none), as the sidecar times lag. */
  get pendingSince(): string | null {
    const position = this.current?.position;
    const seq = position && this.window ? this.window.locate(position.version) : null;
    return seq === null ? null : (this.window?.at(seq)?.header.commitTime ?? null);
  }

  /**
   * Runs until {@link stop} (resolves null) or a fatal error (resolves it). A
   * replica that cannot be reached, standing by or applying, is waited for
   * (the command first waited for it to answer at all).
   */
  async run(): Promise<LockstepError | null> {
    while (!this.stopping && !this.fatal) {
      if (!(await this.acquire())) break;
      await this.serve();
      if (this.lockLost && !this.stopping)
        this.parts.log.warn(
          { replica: this.replica, event: 'agent-lock-lost' },
          'agent lock lost: standing by',
        );
    }
    await this.parts.lock.release();
    return this.fatal;
  }

  stop(): void {
    this.stopping = true;
    this.wake.notify();
  }

  /** Takes the lock, standing by while another agent holds it; false once stopped. */
  private async acquire(): Promise<boolean> {
    const { lock, log } = this.parts;
    const every = this.parts.lockCheckMs ?? LOCK_CHECK_MS;
    let told = false;
    while (!this.stopping) {
      try {
        if (await lock.tryAcquire()) {
          this.lockLost = false;
          log.info({ replica: this.replica, event: 'agent-active' }, 'agent lock taken: applying');
          return true;
        }
        if (!told)
          log.info(
            { replica: this.replica, event: 'agent-standby' },
            'another agent applies to this replica: standing by',
          );
        told = true;
      } catch (error) {
        log.warn(
          { replica: this.replica, err: (error as Error).message, event: 'agent-lock-failed' },
          'cannot take the agent lock: retrying',
        );
      }
      await this.wake.wait(every);
    }
    return false;
  }

  /** Applies while the lock is held: the replica machine and the pump, until stop, lock loss or a fatal error. */
  private async serve(): Promise<void> {
    const { parts } = this;
    const window = new AgentWindow(
      parts.windowChanges,
      parts.agent.batchRows,
      2 * parts.agent.batchRows,
    );
    let agent: ReplicaAgent | null = null;
    const pump = new BusPump(parts.packets, window, {
      replica: this.replica,
      log: parts.log,
      position: () => agent?.position ?? null,
      fatal: (error, through) => {
        this.fatal = error;
        this.fatalAfter = through ?? null;
        this.wake.notify();
      },
      seen: (part) => parts.rounds.migrations?.seen(part),
      stalled: (problem, fix) => agent?.sourceTrouble(problem, fix),
    });
    agent = this.newAgent(window, pump);
    this.current = agent;
    this.window = window;
    const rounds = startRounds(this.replica, () => this.current, parts);
    const applying = agent.run();
    const pumping = pump.run();
    const over = () =>
      this.stopping ||
      this.lockLost ||
      (this.fatal !== null &&
        (this.fatalAfter === null || (agent.position?.version ?? -1) >= this.fatalAfter));
    while (!over()) {
      await this.wake.wait(parts.lockCheckMs ?? LOCK_CHECK_MS);
      // A lock session that hangs counts as lost: another agent may already apply.
      if (!over()) await parts.lock.verify();
    }
    agent.stop();
    pump.stop();
    // Wakes an agent waiting for the window (an open batch rolls back).
    window.reset();
    await Promise.all([applying, pumping]);
    await rounds.stop();
    this.current = null;
    this.window = null;
  }

  private newAgent(window: AgentWindow, pump: BusPump): ReplicaAgent {
    const { parts } = this;
    const { log } = parts;
    return new ReplicaAgent(this.replica, parts.target, window, parts.agent, {
      applied: (agent, position, packets, rows) => {
        log.debug({ replica: agent.name, version: position.version, packets, rows }, 'applied');
        parts.changed?.();
        // An agent that ends after what it read was applied looks again.
        if (this.fatal) this.wake.notify();
      },
      stateChanged: (agent) => {
        logReplicaState(log, agent);
        parts.changed?.();
        // The pump waits for the replica's first position.
        pump.nudge();
      },
      needsRewind: (_agent, position) => pump.requestRewind(position),
      // Decided by the coordinator's word at the gate; a restarted coordinator hears of it here.
      roundCommitted: (version) => {
        this.told = tellWaiting(window, version, parts.rounds, this.told);
        return false;
      },
      note: (agent, message, fields) => log.info({ replica: agent.name, ...fields }, message),
    });
  }
}

/**
 * Answers the coordinator while this agent holds the replica's lock, and
 * asks it about gids a crash left prepared: at once, then every recovery
 * interval while any stays prepared.
 */
function startRounds(
  replica: string,
  current: () => ReplicaAgent | null,
  parts: BusAgentParts,
): { stop(): Promise<void> } {
  const server = new AgentRoundServer(
    replica,
    () => current()?.participant ?? null,
    parts.rounds,
    parts.log,
  );
  const unserve = parts.rounds.serve(server.handle);
  const stopped = new Signal();
  let stopping = false;
  const asking = (async () => {
    while (!stopping) {
      await server
        .resolveInDoubt()
        .catch((error: Error) =>
          parts.log.warn(
            { replica, err: error.message, event: 'in-doubt-failed' },
            'cannot look for in-doubt gids: retrying',
          ),
        );
      await stopped.wait(parts.rounds.recoveryIntervalMs);
      // An applier parked at a gate tells the coordinator again (one restarted since knows nothing of it).
      current()?.participant.nudge();
    }
  })();
  return {
    async stop() {
      stopping = true;
      stopped.notify();
      await asking;
      await unserve();
    },
  };
}

/**
 * Tells the coordinator the replica waits at the two-phase packet `version`
 * (after its restart, nobody else does), unless it was told within a second;
 * returns when it was last told.
 */
function tellWaiting(
  window: AgentWindow,
  version: number,
  rounds: AgentRoundsWiring,
  told: { version: number; at: number },
): { version: number; at: number } {
  const now = Date.now();
  if (told.version === version && now - told.at < 1_000) return told;
  const seq = window.locate(version - 1);
  const part = seq === null ? undefined : window.at(seq);
  if (!part || part.header.version !== version) return told;
  const whole = part.index === 0 && part.final?.phase === 'two';
  rounds.waiting({ version, lsn: part.header.lsn, rows: part.changes.length, whole });
  return { version, at: now };
}

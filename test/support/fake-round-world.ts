import pino from 'pino';
import type {
  DecisionStore,
  ParticipantOutcome,
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from '../../plugin/coordinator/round-participant.js';
import {
  type CoordinatorParts,
  TwoPhaseCoordinator,
} from '../../plugin/coordinator/two-phase-coordinator.js';
import { toLsn } from '../../plugin/protocol/index.js';

/** Fakes of a two-phase coordinator's world (participants, nodes, decision log) for unit tests. */

/** How a participant answers its prepare. */
/** `stuck-update`: behind the round, and its delta never arrives (its packets wait for a rewind that never comes). */
export type Behaviour = 'yes' | 'no' | 'needs-update' | 'stuck-update' | 'late-yes' | 'throws';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What happened, in order, across the fakes. */
export type Happening =
  | { kind: 'decided'; gid: string; decision: 'commit' | 'abort' }
  | { kind: 'commit' | 'rollback' | 'prepare'; gid: string; node: string };

export class FakeWorld {
  readonly happenings: Happening[] = [];
  readonly prepared = new Map<string, Set<string>>();
  readonly decisions = new Map<string, 'commit' | 'abort'>();

  /** A participant at version 9 whose prepare is `prepare`. */
  preparing(name: string, prepare: RoundParticipant['prepare']): RoundParticipant {
    return { ...this.participant(name, 'yes', 30), name, heldVersion: 9, prepare };
  }

  /** PREPARE TRANSACTION of `gid` ran on `node`. */
  prepare(gid: string, node: string): void {
    const nodes = this.prepared.get(gid) ?? new Set<string>();
    nodes.add(node);
    this.prepared.set(gid, nodes);
  }

  node(name: string, failures: number): PhaseTwoNode {
    let left = failures;
    const held = (gid: string) => this.prepared.get(gid) ?? new Set<string>();
    return {
      node: name,
      list: async () =>
        [...this.prepared]
          .filter(([, nodes]) => nodes.has(name))
          .map(([gid]) => ({
            gid,
            preparedAt: new Date().toISOString(),
            ageSeconds: 0,
            kind: 'stream' as const,
          })),
      commit: async (gid) => {
        if (left-- > 0) throw new Error('connection cut');
        if (held(gid).delete(name)) this.happenings.push({ kind: 'commit', gid, node: name });
      },
      rollback: async (gid) => {
        if (left-- > 0) throw new Error('connection cut');
        if (held(gid).delete(name)) this.happenings.push({ kind: 'rollback', gid, node: name });
      },
      close: async () => undefined,
    };
  }

  store(): DecisionStore {
    return {
      decide: async (record, decision) => {
        const held = this.decisions.get(record.gid) ?? decision;
        if (!this.decisions.has(record.gid)) {
          this.decisions.set(record.gid, decision);
          this.happenings.push({ kind: 'decided', gid: record.gid, decision });
        }
        return held;
      },
      read: async (gids) =>
        new Map(
          gids
            .filter((g) => this.decisions.has(g))
            .map((g) => [g, this.decisions.get(g) as 'commit']),
        ),
      lastRound: async () => 0,
      prune: async () => 0,
      close: async () => undefined,
    };
  }

  participant(name: string, behaviour: Behaviour, timeoutMs: number): RoundParticipant {
    let held = behaviour === 'needs-update' || behaviour === 'stuck-update' ? 5 : 9;
    const prepare = (gid: string) => {
      this.prepare(gid, name);
      this.happenings.push({ kind: 'prepare', gid, node: name });
    };
    return {
      name,
      get heldVersion() {
        return held;
      },
      async prepare(request: PrepareRequest): Promise<Vote> {
        if (held < request.from - 1) return { vote: 'needs-update', at: held };
        if (behaviour === 'no') return { vote: 'no', reason: `${name} refuses` };
        if (behaviour === 'throws') throw new Error(`${name} is unreachable`);
        if (behaviour === 'late-yes') await sleep(timeoutMs * 2);
        prepare(request.gid);
        return { vote: 'yes' };
      },
      async delta(request: PrepareRequest) {
        if (behaviour === 'stuck-update') await new Promise(() => undefined);
        await sleep(5);
        held = request.from - 1;
      },
      decided(_request: PrepareRequest, _outcome: ParticipantOutcome) {},
    };
  }
}

/** Fast retries and no periodic recovery: only a round itself can finish or roll back. */
export const QUICK_ROUNDS = {
  voteTimeoutMs: 1_000,
  deltaTimeoutMs: 1_000,
  batchRows: 100,
  retryInitialMs: 5,
  retryMaxMs: 20,
  recoveryIntervalMs: 600_000,
};

/** Polls `done` until it holds; throws `what` after 5 s. */
export async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(what);
    await sleep(5);
  }
}

/** A started coordinator over `participants` (a node each, named alike), version 10 offered. */
export async function offeredTen(
  world: FakeWorld,
  participants: RoundParticipant[],
  more: Partial<CoordinatorParts> = {},
): Promise<TwoPhaseCoordinator> {
  const coordinator = new TwoPhaseCoordinator({
    stream: 's',
    participants: () => participants,
    epoch: () => 1,
    nodes: new Map(participants.map((p) => [p.name, world.node(p.name, 0)])),
    decisions: world.store(),
    log: pino({ level: 'silent' }),
    options: QUICK_ROUNDS,
    ...more,
  });
  await coordinator.start();
  coordinator.offer({ version: 10, lsn: toLsn('0/10'), rows: 1, whole: true });
  return coordinator;
}

/** A logger whose lines the test reads (matched by fields). */
export function capturedLog(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line)) },
  );
  return { log, lines };
}

import type { Phase } from './packet.js';
import type { Relation } from './relation.js';
import { matchesAnyPattern, parseTablePattern, type TablePattern } from './table-pattern.js';

/** Message prefixes that make a transaction two-phase. */
export const TWO_PHASE_TAG = 'lockstep.two_phase';
/** DDL captured on the primary (issue 5). */
export const DDL_MESSAGE = 'lockstep.ddl';
/** A migration's marker, emitted first in the migration's transaction on the primary. */
export const MIGRATION_MARKER = 'lockstep.migration';
/** The barrier a migration waits for every replica to reach before it prepares there. */
export const BARRIER_MESSAGE = 'lockstep.barrier';
/** With `bus`: a migration's work (its SQL and history change), vouched for by a control event at the barrier. */
export const MIGRATION_WORK = 'lockstep.migration_work';

/** The setup information the policy decides from (the `twoPhase` configuration). */
export interface PhaseSetup {
  /** Critical tables, as patterns (`billing.*`). */
  readonly tables: readonly string[];
  /** Whether an application's `lockstep.two_phase` tag counts. */
  readonly tag: boolean;
}

/** What the policy sees of one whole transaction. */
export interface PhaseEvidence {
  readonly relations: ReadonlySet<Pick<Relation, 'schema' | 'name'>>;
  readonly messagePrefixes: readonly string[];
}

/**
 * Decides a packet's phase before it is sent, from the setup alone (DESIGN.md,
 * "deciding before sending"): two-phase when the transaction changed a critical
 * table, carries the application's tag (if tags are honoured), or is captured
 * DDL or a migration marker; one-phase otherwise. (A migration run by
 * `lockstep migrate` opens its transaction with its marker: the assembler
 * sends that packet one-phase whatever this says, packet-assembler.ts.)
 */
export function phasePolicy(setup: PhaseSetup): (evidence: PhaseEvidence) => Phase {
  const critical: TablePattern[] = setup.tables.map(parseTablePattern);
  return (evidence) => {
    for (const prefix of evidence.messagePrefixes) {
      if (prefix === DDL_MESSAGE || prefix === MIGRATION_MARKER) return 'two';
      if (setup.tag && prefix === TWO_PHASE_TAG) return 'two';
    }
    if (critical.length > 0) {
      for (const relation of evidence.relations)
        if (matchesAnyPattern(critical, relation)) return 'two';
    }
    return 'one';
  };
}

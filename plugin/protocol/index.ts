/** The pure protocol core: types and decisions, no I/O. */

export * from './captured-statement.js';
export * from './change.js';
export * from './commit-time.js';
export * from './control-event.js';
export * from './gid.js';
export * from './lsn.js';
export * from './migration-work.js';
export * from './net-changes.js';
export * from './one-phase.js';
export * from './packet.js';
export * from './phase-policy.js';
export * from './relation.js';
export * from './replica-apply.js';
export * from './sql-statements.js';
export * from './table-pattern.js';
export * from './two-phase-round.js';
export * from './value.js';

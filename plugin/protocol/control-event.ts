import type { MessageChange } from './change.js';
import {
  BARRIER_MESSAGE,
  DDL_MESSAGE,
  MIGRATION_MARKER,
  MIGRATION_WORK,
  TWO_PHASE_TAG,
} from './phase-policy.js';
import type { Relation } from './relation.js';

/**
 * Control events: what steers the replicas (captured DDL, a migration's
 * marker) travels as a row inserted into this table — which only lockstep's
 * role and its capture function may write — in the same transaction as the
 * change it describes, and deleted again at once (the table stays empty).
 * Postgres's permissions vouch for it; a logical message, which any role may
 * emit, never does.
 */
export const CONTROL_EVENTS_TABLE = { schema: 'lockstep', name: 'control_events' } as const;

/** The kinds of control event, and the message prefix each travels under inside a packet. */
export const CONTROL_EVENT_PREFIX = {
  ddl: DDL_MESSAGE,
  migration: MIGRATION_MARKER,
  'migration-work': MIGRATION_WORK,
} as const;

export type ControlEventKind = keyof typeof CONTROL_EVENT_PREFIX;

/** Whether `relation` is the control-event table. */
export function isControlEventTable(relation: Pick<Relation, 'schema' | 'name'>): boolean {
  return (
    relation.schema === CONTROL_EVENTS_TABLE.schema && relation.name === CONTROL_EVENTS_TABLE.name
  );
}

/**
 * The packet change for a row inserted into the control-event table (its
 * `kind` and `payload` columns); null for a kind this version does not know.
 */
export function controlEventChange(
  relation: Relation,
  valueAt: (column: number) => unknown,
): MessageChange | null {
  const named = (name: string) => {
    const index = relation.columns.findIndex((c) => c.name === name);
    return index < 0 ? undefined : valueAt(index);
  };
  const kind = named('kind');
  const payload = named('payload');
  if (typeof kind !== 'string' || typeof payload !== 'string') return null;
  if (kind !== 'ddl' && kind !== 'migration' && kind !== 'migration-work') return null;
  return {
    kind: 'message',
    prefix: CONTROL_EVENT_PREFIX[kind],
    content: payload,
  };
}

/**
 * Logical messages any role may emit and lockstep still reads: the
 * application's two-phase tag (it can only make delivery stricter) and a
 * migration's barrier (a point in the stream, its content never acted upon).
 * Every other `lockstep.` message is forged: ignored.
 */
export function isOpenMessage(prefix: string): boolean {
  return prefix === TWO_PHASE_TAG || prefix === BARRIER_MESSAGE;
}

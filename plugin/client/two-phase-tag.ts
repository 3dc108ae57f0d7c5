import { type Kysely, sql } from 'kysely';
import { TWO_PHASE_TAG } from '../protocol/phase-policy.js';

/** Anything with `pg`'s `query(text)`: a `pg.Client` or a pooled client. */
export interface QueryRunner {
  query(text: string): Promise<unknown>;
}

const TAG_SQL = `SELECT pg_logical_emit_message(true, '${TWO_PHASE_TAG}', '')`;

/**
 * Marks the current transaction critical, so lockstep delivers it two-phase
 * (all replicas or none). Call it between BEGIN and COMMIT on the same client:
 * the tag is a transactional logical message and belongs to that transaction.
 * Needs `twoPhase.tag: true` (the default) in lockstep's configuration.
 */
export async function tagTwoPhase(client: QueryRunner): Promise<void> {
  await client.query(TAG_SQL);
}

/**
 * The same inside a Kysely transaction:
 * `await db.transaction().execute(async (trx) => { await tagTwoPhaseKysely(trx); … })`.
 */
// biome-ignore lint/suspicious/noExplicitAny: works with any database type
export async function tagTwoPhaseKysely(trx: Kysely<any>): Promise<void> {
  await sql.raw(TAG_SQL).execute(trx);
}

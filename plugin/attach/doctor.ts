import type pg from 'pg';
import { connectNode } from '../../adapters/postgres/node-connection.js';
import { checkPrimaryPrerequisites } from '../../adapters/postgres/primary-prerequisites.js';
import { readSlot } from '../../adapters/postgres/replication-slot.js';
import { quoteQualified } from '../../adapters/postgres/sql-identifier.js';
import {
  type CatalogTable,
  readCatalog,
  selectReplicated,
} from '../../adapters/postgres/table-catalog.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../lockstep-error.js';
import { parseTablePattern } from '../protocol/index.js';
import { compareTable } from './table-compatibility.js';

/** What `doctor` found. */
export interface DoctorReport {
  /** Every problem, each naming its node (and table) and the fix. Empty when all is well. */
  readonly problems: readonly LockstepError[];
  /** The primary's replicated tables (empty when the primary could not be read). */
  readonly tables: readonly CatalogTable[];
}

/**
 * Checks every node for what lockstep needs and lists each problem with its
 * fix: the primary's settings and privileges, tables lockstep could not
 * identify rows of, each replica's reachability, `max_prepared_transactions`
 * and table shapes.
 */
export async function runDoctor(config: LockstepConfig): Promise<DoctorReport> {
  const problems: LockstepError[] = [];
  const patterns = config.tables.map(parseTablePattern);
  let tables: CatalogTable[] = [];

  let primary: pg.Client | null = null;
  try {
    primary = await connectNode('primary', config.primary);
  } catch (error) {
    problems.push(error as LockstepError);
  }
  if (primary) {
    try {
      const slot = await readSlot(primary, config.slot);
      problems.push(...(await checkPrimaryPrerequisites(primary, { needFreeSlot: slot === null })));
      tables = selectReplicated(await readCatalog(primary), patterns);
      if (tables.length === 0) {
        problems.push(
          new LockstepError({
            node: 'primary',
            setting: 'tables',
            problem: `no table matches the configured tables ${JSON.stringify(config.tables)}`,
            fix: 'list the tables to replicate in "tables" (patterns like "public.*" or "billing.invoices")',
          }),
        );
      }
      for (const table of tables) {
        if (
          !table.hasPrimaryKey &&
          table.replicaIdentity !== 'f' &&
          table.replicaIdentity !== 'i'
        ) {
          problems.push(
            new LockstepError({
              node: 'primary',
              table: `${table.schema}.${table.name}`,
              setting: 'REPLICA IDENTITY',
              problem:
                'the table has no primary key and no REPLICA IDENTITY FULL: its updates and deletes cannot be replicated (and would fail on the primary once published)',
              fix: `add a primary key, or run ALTER TABLE ${quoteQualified(table.schema, table.name)} REPLICA IDENTITY FULL`,
            }),
          );
        }
      }
    } finally {
      await primary.end();
    }
  }

  await Promise.all(
    config.replicas.map(async (replica) => {
      let client: pg.Client;
      try {
        client = await connectNode(replica.name, replica.url);
      } catch (error) {
        problems.push(error as LockstepError);
        return;
      }
      try {
        const { rows } = await client.query<{ n: number }>(
          `SELECT current_setting('max_prepared_transactions')::int AS n`,
        );
        if (!rows[0] || rows[0].n <= 0) {
          problems.push(
            new LockstepError({
              node: replica.name,
              setting: 'max_prepared_transactions',
              problem:
                'max_prepared_transactions is 0: the replica cannot take part in two-phase commits',
              fix: 'set max_prepared_transactions = 64 in postgresql.conf (ALTER SYSTEM SET max_prepared_transactions = 64) and restart the replica',
            }),
          );
        }
        const catalog = new Map(
          (await readCatalog(client)).map((t) => [`${t.schema}.${t.name}`, t]),
        );
        for (const table of tables) {
          for (const mismatch of compareTable(
            table,
            catalog.get(`${table.schema}.${table.name}`),
          )) {
            problems.push(
              new LockstepError({
                node: replica.name,
                table: mismatch.table,
                setting: mismatch.column ? `column ${mismatch.column}` : 'table',
                problem: mismatch.problem,
                fix: mismatch.fix,
              }),
            );
          }
        }
      } finally {
        await client.end();
      }
    }),
  );
  return { problems, tables };
}

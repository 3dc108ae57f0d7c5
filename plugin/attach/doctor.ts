import type { LockstepConfig } from '../config/config-schema.js';
import type { CatalogTable } from '../ports/catalog-table.js';
import type {
  LockstepCluster,
  NodeSession,
  PrimarySession,
  ReplicaSession,
} from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { matchesAnyPattern, parseTablePattern } from '../protocol/index.js';
import { sqlQualifiedName } from '../protocol/sql-name.js';
import { checkNodeSettings } from './doctor-settings.js';
import {
  isLockWait,
  isUnanswered,
  nodeStepError,
  primaryCommandSession,
  primaryStepError,
} from './node-step.js';
import { compareTable } from './table-compatibility.js';

/** What `doctor` found. */
export interface DoctorReport {
  /** Every problem, each naming its node (and table) and the fix. Empty when all is well. */
  readonly problems: readonly LockstepError[];
  /** Settings that work but can hurt (a session timeout, an unbounded slot), each with the fix. */
  readonly warnings: readonly LockstepError[];
  /** The primary's replicated tables (empty when the primary could not be read). */
  readonly tables: readonly CatalogTable[];
}

/** What one node's checks found. */
interface NodeFindings {
  problems: LockstepError[];
  warnings: LockstepError[];
}

/** Tables lockstep could not identify rows of (no primary key, no REPLICA IDENTITY FULL or index). */
function unidentifiedTables(tables: readonly CatalogTable[]): LockstepError[] {
  return tables
    .filter((t) => !t.hasPrimaryKey && t.replicaIdentity !== 'f' && t.replicaIdentity !== 'i')
    .map(
      (table) =>
        new LockstepError({
          node: 'primary',
          table: `${table.schema}.${table.name}`,
          setting: 'REPLICA IDENTITY',
          problem:
            'the table has no primary key and no REPLICA IDENTITY FULL: its updates and deletes cannot be replicated (and would fail on the primary once published)',
          fix: `add a primary key, or run ALTER TABLE ${sqlQualifiedName(table.schema, table.name)} REPLICA IDENTITY FULL`,
        }),
    );
}

/** The primary: settings, privileges, slots, the replicated tables. */
async function checkPrimary(
  config: LockstepConfig,
  primary: PrimarySession,
): Promise<NodeFindings & { tables: CatalogTable[] }> {
  const slot = await primary.slots.read(config.slot);
  const problems = await primary.setup.checkPrerequisites({ needFreeSlot: slot === null });
  const settings = await checkNodeSettings(primary, 'primary', {
    primary: true,
    maxLagBytes: config.maxLagBytes,
  });
  problems.push(...settings.problems);
  const patterns = config.tables.map(parseTablePattern);
  const tables = (await primary.readCatalog()).filter((t) => matchesAnyPattern(patterns, t));
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
  problems.push(...unidentifiedTables(tables));
  return {
    problems,
    warnings: [...settings.warnings, ...(await abandonedHolds(primary, config.slot))],
    tables,
  };
}

/**
 * Holds on the slot that a killed attach left (a warning: attach itself
 * replaces them). Until then the slot keeps WAL from there.
 */
async function abandonedHolds(primary: PrimarySession, stream: string): Promise<LockstepError[]> {
  if (!(await primary.joinHolds.exists())) return [];
  return (await primary.joinHolds.read(stream))
    .filter((h) => !h.holderAlive)
    .map(
      (h) =>
        new LockstepError({
          node: h.replica,
          setting: 'join hold',
          problem: `an attach that no longer runs (${h.holder}, since ${h.createdAt}) left a hold on the slot for this replica: the primary keeps WAL from ${h.lsn}`,
          fix: 'run lockstep attach again (it copies the replica and replaces the hold), or lockstep detach',
        }),
    );
}

/** One replica: settings, and every replicated table's shape against the primary's. */
async function checkReplica(
  config: LockstepConfig,
  replica: LockstepConfig['replicas'][number],
  client: ReplicaSession,
  tables: readonly CatalogTable[],
  copying: boolean,
): Promise<NodeFindings> {
  const { problems, warnings } = await checkNodeSettings(client, replica.name, {
    primary: false,
    maxLagBytes: config.maxLagBytes,
  });
  const catalog = new Map((await client.readCatalog()).map((t) => [`${t.schema}.${t.name}`, t]));
  // A replica in the stream behind captured DDL differs from the primary until it gets there.
  const pendingDdl =
    !copying && config.twoPhase.captureDdl && (await placedInStream(client, config.slot));
  for (const table of tables) {
    for (const mismatch of compareTable(table, catalog.get(`${table.schema}.${table.name}`))) {
      (pendingDdl ? warnings : problems).push(
        new LockstepError({
          node: replica.name,
          table: mismatch.table,
          setting: mismatch.column ? `column ${mismatch.column}` : 'table',
          problem: pendingDdl
            ? `${mismatch.problem} (it is in the stream: DDL captured on the primary it has not applied yet may explain it)`
            : mismatch.problem,
          fix: pendingDdl
            ? `if lockstep status shows it caught up and this stays: ${mismatch.fix}`
            : mismatch.fix,
        }),
      );
    }
  }
  return { problems, warnings };
}

/** Whether the replica has a position in the stream (attach placed it; it is not copied again). */
async function placedInStream(client: ReplicaSession, stream: string): Promise<boolean> {
  if (!(await client.positions.exists())) return false;
  return (await client.positions.read(stream)) !== null;
}

/**
 * Connects to a node and runs `check`; an unreachable node is a problem of
 * its own, and so is a replica whose checks fail (one that stops answering
 * fails them after the session's deadline): named, so the other nodes' findings stay.
 */
async function onNode<S extends NodeSession, T extends NodeFindings>(
  open: () => Promise<S>,
  check: (session: S) => Promise<T>,
  failed?: (error: unknown) => LockstepError,
): Promise<T | NodeFindings> {
  let session: S;
  try {
    session = await open();
  } catch (error) {
    return { problems: [error as LockstepError], warnings: [] };
  }
  try {
    return await check(session);
  } catch (error) {
    if (!failed) throw error;
    return { problems: [failed(error)], warnings: [] };
  } finally {
    await session.close();
  }
}

/**
 * Checks every node for what lockstep needs and lists each problem with its
 * fix: the primary's settings and privileges, tables lockstep could not
 * identify rows of, each node's reachability, `max_prepared_transactions`
 * and table shapes; and warns about settings that can hurt later.
 */
export async function runDoctor(
  cluster: LockstepCluster,
  config: LockstepConfig,
  /** Replicas about to be copied anew (attach --resync): their shape must match the primary's now. */
  copying: ReadonlySet<string> = new Set(),
): Promise<DoctorReport> {
  const primary = await onNode(
    // Bounded as the replicas: a primary that stops answering is a problem named, not a hang.
    () => cluster.primary(config.primary, primaryCommandSession(config, 'lockstep-doctor')),
    (session) => checkPrimary(config, session),
    (error) => {
      // A primary that did not answer, or whose lock wait ended (a session holds a lock), is a problem
      // named; any other failure stops doctor, as before.
      if (!isUnanswered(error) && !isLockWait(error)) throw error;
      return primaryStepError(
        "doctor's checks (settings, slot, tables, join holds)",
        config.applyTimeoutMs,
        error,
        'run lockstep doctor again',
      );
    },
  );
  const tables = 'tables' in primary ? primary.tables : [];
  const replicas = await Promise.all(
    config.replicas.map((replica) =>
      onNode(
        // Bounded: a replica that stops answering fails its checks after applyTimeoutMs, not hangs doctor.
        () =>
          cluster.replica(replica.name, replica.url, {
            bounded: true,
            applicationName: 'lockstep-doctor',
            queryTimeoutMs: config.applyTimeoutMs,
          }),
        (session) => checkReplica(config, replica, session, tables, copying.has(replica.name)),
        (error) =>
          nodeStepError(
            replica.name,
            "doctor's checks (settings, tables, position)",
            config.applyTimeoutMs,
            error,
            'run lockstep doctor again',
          ),
      ),
    ),
  );
  const all = [primary, ...replicas];
  return {
    problems: all.flatMap((f) => f.problems),
    warnings: all.flatMap((f) => f.warnings),
    tables,
  };
}

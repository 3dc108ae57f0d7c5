import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { AttachProgress } from './attach-progress.js';
import type { DoctorReport } from './doctor.js';
import { MISSING_TABLE_PROBLEM } from './table-compatibility.js';

/** A doctor problem that says a replicated table is missing on a replica. */
export const isMissingTable = (problem: LockstepError) =>
  problem.table !== undefined && problem.message.includes(MISSING_TABLE_PROBLEM);

/** --create-schema: creates on each replica the replicated tables it lacks, from the primary's catalog. */
export async function createMissingTables(
  cluster: LockstepCluster,
  config: LockstepConfig,
  report: DoctorReport,
  progress: AttachProgress,
): Promise<void> {
  for (const replica of config.replicas) {
    const missing = report.problems
      .filter((p) => p.node === replica.name && isMissingTable(p))
      .map((p) => p.table);
    if (missing.length === 0) continue;
    // Bounded: a replica that stops answering fails attach instead of hanging it.
    const session = await cluster.replica(replica.name, replica.url, { bounded: true });
    try {
      for (const table of report.tables.filter((t) => missing.includes(`${t.schema}.${t.name}`))) {
        try {
          await session.setup.createTable(table);
        } catch (error) {
          throw new LockstepError({
            node: replica.name,
            table: `${table.schema}.${table.name}`,
            problem: `cannot create the table: ${(error as Error).message}`,
            fix: 'create what it depends on (types, schemas) on the replica, or create the table yourself (pg_dump --schema-only -t …)',
            cause: error,
          });
        }
        progress.step('created a missing table', {
          replica: replica.name,
          table: `${table.schema}.${table.name}`,
        });
      }
    } finally {
      await session.close();
    }
  }
}

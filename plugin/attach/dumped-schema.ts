import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { StepReporter } from './attach-progress.js';

/**
 * A replica whose tables were made with `pg_dump --schema-only` of the primary
 * (as the README advises) gets lockstep's own `lockstep` schema with them:
 * its tables (empty), functions and the DDL capture's event triggers, but no
 * migration history. Such a schema is removed when it holds no rows: a
 * schema-only dump carries no data, nothing of lockstep's lives there yet, and
 * lockstep creates its own in its place — dropping it loses nothing (each
 * object is dropped RESTRICT: nothing outside it goes). One holding rows, or
 * that something outside depends on, is refused with the fix. Returns the
 * problems (none when every replica is fine).
 */
export async function removeDumpedControlSchemas(
  cluster: LockstepCluster,
  config: LockstepConfig,
  step: StepReporter,
): Promise<LockstepError[]> {
  const problems: LockstepError[] = [];
  for (const replica of config.replicas) {
    // Bounded: a replica that stops answering fails attach instead of hanging it.
    const session = await cluster.replica(replica.name, replica.url, { bounded: true });
    try {
      const foreign = await session.setup.findForeignControlSchema();
      if (!foreign) continue;
      const what =
        'it has a "lockstep" schema lockstep did not create there (no migration history: it came with a dump of the primary)';
      if (foreign.tablesWithRows.length > 0) {
        problems.push(
          new LockstepError({
            node: replica.name,
            setting: 'lockstep schema',
            problem: `${what}, and rows in ${foreign.tablesWithRows.join(', ')}: lockstep leaves it alone`,
            fix: foreign.fix,
          }),
        );
        continue;
      }
      try {
        await session.setup.dropForeignControlSchema(foreign);
      } catch (error) {
        problems.push(
          new LockstepError({
            node: replica.name,
            setting: 'lockstep schema',
            problem: `${what}, and it cannot be removed on its own: ${(error as Error).message}`,
            fix: foreign.fix,
            cause: error,
          }),
        );
        continue;
      }
      // A schema-only dump of the primary brought it along, empty: lockstep creates its own.
      step('removed a dumped lockstep schema', {
        replica: replica.name,
        eventTriggers: foreign.eventTriggers,
      });
    } finally {
      await session.close();
    }
  }
  return problems;
}

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { preparedGids } from './compare-nodes.js';
import { LockstepProcess } from './lockstep-process.js';

/**
 * Writes migration `001-notes` into `dir`, runs `migrate up` killed once its
 * decision is recorded (every node's gid left prepared), and rolls `replica`'s
 * gid back by hand: recovery then commits it everywhere but there.
 */
export async function loseMigrationOn(
  configFile: string,
  dir: string,
  replica: PostgresCluster,
): Promise<void> {
  writeFileSync(
    path.join(dir, '001-notes.sql'),
    'CREATE TABLE notes (id int PRIMARY KEY, body text);',
  );
  const killed = new LockstepProcess(['migrate', 'up', '--config', configFile, '--dir', dir], {
    LOCKSTEP_FAULT: 'after-decision',
  });
  expect(await killed.exited, killed.output).toBeNull();
  const [gid] = (await preparedGids([replica])).map((g) => g.slice(g.indexOf(':') + 1));
  expect(gid).toBeDefined();
  await replica.query(`ROLLBACK PREPARED '${gid}'`);
}

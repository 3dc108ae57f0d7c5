import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { preparedGids } from './compare-nodes.js';
import { LockstepProcess } from './lockstep-process.js';

/**
 * Runs `args` (a `migrate` or `exec` with its `--config`) killed once its
 * decision is recorded (every node's gid left prepared), and rolls
 * `replica`'s gid back by hand: recovery then commits it everywhere but
 * there. The round's gid.
 */
export async function loseRoundOn(args: string[], replica: PostgresCluster): Promise<string> {
  const killed = new LockstepProcess(args, { LOCKSTEP_FAULT: 'after-decision' });
  expect(await killed.exited, killed.output).toBeNull();
  const [gid] = (await preparedGids([replica])).map((g) => g.slice(g.indexOf(':') + 1));
  expect(gid).toBeDefined();
  await replica.query(`ROLLBACK PREPARED '${gid}'`);
  return gid as string;
}

/** {@link loseRoundOn} for migration `001-notes`, written into `dir`. */
export async function loseMigrationOn(
  configFile: string,
  dir: string,
  replica: PostgresCluster,
): Promise<string> {
  writeFileSync(
    path.join(dir, '001-notes.sql'),
    'CREATE TABLE notes (id int PRIMARY KEY, body text);',
  );
  return loseRoundOn(['migrate', 'up', '--config', configFile, '--dir', dir], replica);
}

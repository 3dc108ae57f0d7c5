import { mark, pgbench, waitOnAll } from '../../support/bench-cluster.js';
import { PGBENCH_SECONDS } from '../knobs.js';
import { check, type Rig, record } from '../rig.js';

/** (b) pgbench while replicating: primary TPS, and catch-up after it ends. */
export async function steadyState(rig: Rig): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (b) pgbench -c 4 -j 2 -T ${PGBENCH_SECONDS} while replicating`);
  await p.query('VACUUM pgbench_branches, pgbench_tellers');
  record(
    rig,
    'b_primary_tps',
    await pgbench(p, ['-n', '-c', '4', '-j', '2', '-T', String(PGBENCH_SECONDS)]),
  );
  const end = performance.now();
  const caught = await waitOnAll(
    replicas,
    `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${await mark(p)})`,
  );
  record(rig, 'b_catchup_ms', caught - end);
  await check(rig, 'b');
}

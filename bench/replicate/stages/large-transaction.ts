import { waitOnAll } from '../../support/bench-cluster.js';
import { BULK_ROWS } from '../knobs.js';
import { check, type Rig, record } from '../rig.js';

/** (d) one large transaction (run `run` adds ids past the earlier runs'), commit to visible on both. */
export async function largeTransaction(rig: Rig, run: number): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (d) one ${BULK_ROWS}-row transaction`);
  await Promise.all([p, ...replicas].map((c) => c.query('CHECKPOINT')));
  const first = run * BULK_ROWS;
  await p.query(
    `INSERT INTO bulk SELECT ${first} + g, substr(repeat(md5(g::text), 4), 1, 100) FROM generate_series(1, ${BULK_ROWS}) g`,
  );
  const committed = performance.now();
  const visible = await waitOnAll(
    replicas,
    `EXISTS (SELECT 1 FROM bulk WHERE id = ${first + BULK_ROWS})`,
  );
  record(rig, 'd_commit_to_both_s', (visible - committed) / 1000);
  await check(rig, 'd');
}

import { describe, expect, it } from 'vitest';
import type { LockstepStatus } from '../../../plugin/status/read-status.js';
import { eventually, expectIdentical } from '../../support/compare-nodes.js';
import { lockstep } from '../../support/lockstep-process.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';
import { runTpcb, TPCB_SCHEMA, tpcbSeed } from '../../support/tpcb-workload.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
/** The states of a replica that follows the primary. */
const following = (state: string) => state === 'streaming' || state === 'catching-up';

describe.each(transports)('one-phase replication end to end, 2 replicas (%s)', (transport) => {
  const replication = useReplication(transport, {
    replicas: 2,
    schema: TPCB_SCHEMA,
    seed: tpcbSeed(2, 5_000),
  });

  it('attaches with an initial copy, then keeps every table identical under a TPC-B workload; status says healthy and converged', async () => {
    const { primary, replicas, configFile } = replication;
    expect(replication.attachOutput).toMatch(
      /attached: 10 table copies, 20,044 rows, to 2 replica\(s\)/,
    );
    await expectIdentical(primary, replicas, TABLES);
    const again = await lockstep(['attach', '--config', configFile]);
    expect(again.output).toMatch(/already attached/);
    expect(again.code).toBe(0);

    replication.start();
    const work = await runTpcb(primary.url, {
      clients: 4,
      ms: 4_000,
      branches: 2,
      accountsPerBranch: 5_000,
    });
    expect(work.transactions).toBeGreaterThan(100);
    await replication.converged();
    await expectIdentical(primary, replicas, TABLES);

    // The head and (with bus) the agents' reports are recorded a moment after applying: wait for them.
    let last: { code: number | null; json: LockstepStatus } | null = null;
    const status = async () => {
      const r = await lockstep(['status', '--config', configFile, '--json'], {}, 60_000);
      last = { code: r.code, json: JSON.parse(r.stdout) as LockstepStatus };
      return last;
    };
    await eventually(async () => {
      const { code, json } = await status();
      return (
        code === 0 &&
        (json.primary.version ?? 0) >= work.transactions &&
        json.replicas.every((r) => following(r.state) && r.version === json.primary.version)
      );
    }, 'status to show every replica healthy at the head');
    const { json } = last as unknown as { json: LockstepStatus };
    expect(json).toMatchObject({
      replicas: [
        { name: 'replica1', lagVersions: 0, error: null, reachable: true },
        { name: 'replica2', lagVersions: 0, error: null, reachable: true },
      ],
      inDoubt: [],
    });
  });
});

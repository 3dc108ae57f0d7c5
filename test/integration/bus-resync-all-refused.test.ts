import { describe, expect, it } from 'vitest';
import { appliedVersion, expectIdentical } from '../support/compare-nodes.js';
import { lockstep } from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';

const replication = useReplication('bus', { replicas: 2, schema: NUMBERED_SCHEMA });

describe('lockstep attach --resync all with bus', () => {
  it('is refused before anything changes: the JetStream stream holds the old numbering', async () => {
    const { primary } = replication;
    replication.start();
    await insertNumbered(primary, 1, 20);
    await replication.converged();
    await replication.stop();
    const slot = await primary.query('SELECT slot_name FROM pg_replication_slots');
    const versions = await Promise.all(replication.replicas.map((r) => appliedVersion(r)));

    const r = await lockstep(
      ['attach', '--config', replication.configFile, '--resync', 'all'],
      {},
      180_000,
    );
    expect(r.code, r.output).toBe(1);
    expect(r.output).toMatch(/JetStream stream LOCKSTEP_LOCKSTEP still holds its old versions/);
    expect(r.output).toMatch(/fix: resync the replicas by name \(lockstep attach --resync NAME/);
    expect(r.output).toMatch(/nats stream rm LOCKSTEP_LOCKSTEP/);

    // Nothing changed: same slot, no stale mark, every replica where it was.
    expect(await primary.query('SELECT slot_name FROM pg_replication_slots')).toEqual(slot);
    expect(
      await primary.query(
        'SELECT replica FROM lockstep.replica_status WHERE stale_since IS NOT NULL',
      ),
    ).toEqual([]);
    expect(await Promise.all(replication.replicas.map((c) => appliedVersion(c)))).toEqual(versions);

    await insertNumbered(primary, 21, 5);
    replication.start();
    await replication.converged();
    await expectIdentical(primary, replication.replicas, ['t']);
  });
});

import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids } from '../../support/compare-nodes.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';

/**
 * Rows of a table every node holds on its own (not replicated): building an
 * index over an expression of them keeps a replica busy with one statement,
 * on its data alone, several times longer than the apply deadline.
 */
const ROWS = 3_000_000;
/**
 * The busy replica's answer to the probe comes within this on a loaded two-core
 * machine (1 s was missed there); the test still fails unless each replica
 * reports itself busy, i.e. the statement outlasts it.
 */
const APPLY_TIMEOUT_MS = 2_500;

const hasIndex = async (node: PostgresCluster) =>
  (await node.query(`SELECT to_regclass('bulk.big_digest') IS NOT NULL AS found`))[0]?.found ===
  true;

describe.each(transports)(
  'a captured statement that runs longer than applyTimeoutMs on the replicas (%s)',
  (transport) => {
    const replication = useReplication(transport, {
      replicas: 2,
      schema: `CREATE SCHEMA bulk; CREATE TABLE bulk.big (id int, v text);
        INSERT INTO bulk.big SELECT g, md5(g::text) FROM generate_series(1, ${ROWS}) g;`,
      config: {
        applyTimeoutMs: APPLY_TIMEOUT_MS,
        // The statement runs under the round's statement_timeout: long enough for it.
        twoPhase: { captureDdl: true, voteTimeoutMs: 120_000 },
        tables: ['public.*'],
      },
    });

    it('lands on every replica at its first attempt: a replica busy with it is not silent', async () => {
      const replicas = replication.replicas as [PostgresCluster, PostgresCluster];
      replication.start();
      await replication.converged();
      await replication.primary.query('CREATE INDEX big_digest ON bulk.big (md5(v))');
      const appliers = replicas.map((r) => replication.applier(r.name));
      const unresponsive = () =>
        appliers.flatMap((p) => p.events('replica-stopped', { state: 'unresponsive' }));
      // On the old deadline each replica is dropped after 1 s and the index never lands.
      await eventually(
        async () =>
          unresponsive().length > 0 ||
          ((await hasIndex(replicas[0])) && (await hasIndex(replicas[1]))),
        'the index on both replicas, or a replica counted unresponsive',
        120_000,
      );
      expect(unresponsive()).toEqual([]);
      // Each replica said why it lagged: busy, not silent.
      for (const replica of replicas)
        await replication.applier(replica.name).untilEvent('replica-busy', { node: replica.name });
      await replication.converged();
      for (const replica of replicas) expect(await hasIndex(replica)).toBe(true);
      expect(await preparedGids([replication.primary, ...replicas])).toEqual([]);
    });
  },
);

import { describe, expect, it } from 'vitest';
import { loseStreamTail } from '../support/bus-stream-loss.js';
import { appliedVersion, eventually } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import {
  appliedPosition,
  STREAM,
  stopped,
  usePowerLossTarget,
} from '../support/power-loss-target.js';

// After a power loss of the NATS nodes the publisher re-derives the lost packets from the slot,
// numbering them back from the recorded head by how many it counts. A count that differs from the
// first one (captureDdl or the publication changed in between: one packet fewer) shifts every
// version up: the agent's next version is then a packet its replica already has. Here the head's
// version is raised by one instead, which shifts the numbering the same way.
const target = usePowerLossTarget();
const { nats, clusters, replica, recordedHead } = target;

describe('an agent before a re-derived stream numbered anew', () => {
  it('halts before the packet it already has, naming both versions and the resync', async () => {
    let publisher = new LockstepProcess(['run', '--config', target.configFile]);
    let agent = startAgent(target.configFile, 'replica1');
    try {
      for (const id of [1, 2, 3]) await clusters.primary.query(`INSERT INTO t VALUES (${id})`);
      await eventually(async () => (await appliedVersion(replica(0))) === 3, 'replica1 at 3');
      await eventually(async () => (await recordedHead()).version === 3, 'the head recorded');
      const held = await appliedPosition(replica(0));
      await stopped(publisher);
      await stopped(agent);
      await loseStreamTail(nats.cluster.url, STREAM, 0);
      await clusters.primary.query(
        "UPDATE lockstep.streams SET version = version + 1 WHERE stream = 'lockstep'",
      );

      publisher = new LockstepProcess(['run', '--config', target.configFile]);
      agent = startAgent(target.configFile, 'replica1');
      await clusters.primary.query('INSERT INTO t VALUES (4)');
      await eventually(
        async () => agent.logEvent('replica-stopped', { kind: 'renumbered' }) !== undefined,
        'replica1 halted before version 4',
      );
      const halt = agent.logEvent('replica-stopped', { kind: 'renumbered' });
      expect(halt).toMatchObject({ replica: 'replica1', state: 'halted', version: 4 });
      expect(halt?.reason).toBe('stream-renumbered');
      expect(String(halt?.err)).toContain(`version ${held.version} (LSN ${held.lsn})`);
      expect(String(halt?.err)).toContain(`version 4 (commit LSN ${held.lsn})`);
      expect(String(halt?.fix)).toContain('lockstep attach --resync replica1');
      // Nothing applied past the replica's own position, and none of its rows twice.
      expect(await appliedPosition(replica(0))).toEqual(held);
      const ids = await replica(0).query<{ id: number }>('SELECT id FROM t ORDER BY id');
      expect(ids.map((r) => r.id)).toEqual([1, 2, 3]);
    } finally {
      await stopped(publisher);
      await stopped(agent);
    }
  });
});

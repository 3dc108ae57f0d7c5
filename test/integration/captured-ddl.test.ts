import { describe, expect, it } from 'vitest';
import { waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// DDL interleaved with writes, forgeries and a replica down run on both transports:
// shared/captured-ddl.test.ts.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE marker (id bigserial PRIMARY KEY)',
  config: { twoPhase: { captureDdl: true }, tables: ['public.*'] },
});

describe('captured DDL (twoPhase.captureDdl)', () => {
  it('detach removes the event trigger', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const p = clusters.primary;
    try {
      await p.query('CREATE TABLE gadgets (id int PRIMARY KEY)');
      await waitForMarker(p, clusters.replicas);
      expect(
        await clusters.replicas[0]?.query(`SELECT to_regclass('gadgets') IS NOT NULL AS found`),
      ).toEqual([{ found: true }]);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
    expect((await lockstep(['detach', '--config', clusters.configFile])).code).toBe(0);
    expect(
      await p.query(`SELECT 1 FROM pg_event_trigger WHERE evtname = 'lockstep_capture_ddl'`),
    ).toEqual([]);
  });
});

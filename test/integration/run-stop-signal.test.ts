import { describe, expect, it } from 'vitest';
import { sleep } from '../../plugin/support/sleep.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

const controlSchemaExists = async () =>
  (await clusters.primary.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'`)).length ===
  1;

/** The exit code, or 'running' when the process has not ended 20 s after the signal (it promises 10 s). */
const endedWithin20s = (run: LockstepProcess) =>
  Promise.race([run.closed, sleep(20_000).then(() => 'running' as const)]);

// A supervisor stops a process whatever it is doing. Start-up hands SIGTERM from "exit at once"
// to "stop cleanly" right after the control schema is ready; a signal that came just then was
// lost (Node had caught it, the listener it was meant for was gone), and run went on for ever.
describe('lockstep run and SIGTERM during start-up', () => {
  it('exits 0 on a SIGTERM sent as its control schema appears, each of 12 times', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas);
    try {
      for (let attempt = 0; attempt < 12; attempt++) {
        await clusters.primary.query('DROP SCHEMA IF EXISTS lockstep CASCADE');
        const run = new LockstepProcess(['run', '--config', config.file]);
        while (!(await controlSchemaExists())) await sleep(10 + (attempt % 4) * 15);
        run.kill('SIGTERM');
        const ended = await endedWithin20s(run);
        if (ended === 'running') run.kill('SIGKILL');
        expect(ended, `attempt ${attempt}:\n${run.output}`).toBe(0);
      }
    } finally {
      config.remove();
    }
  });
});

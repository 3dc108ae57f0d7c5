import { sleep } from '../../../plugin/support/sleep.js';
import { historyCount, mark, pgbench, waitOnAll } from '../../support/bench-cluster.js';
import { BACKLOG_SECONDS, LAUNCHER_WAIT_MS } from '../knobs.js';
import { check, type Rig, record } from '../rig.js';

/** (c) with the system paused and resumed as an operator does it, reported as `figure`. */
const pausedDrain =
  (figure: string) =>
  (rig: Rig): Promise<void> =>
    drainBacklog(
      rig,
      figure,
      () => rig.system.pause(rig.primary, rig.replicas),
      () => rig.system.resume(rig.primary, rig.replicas),
    );

/** (c) a backlog built while replication is paused, then the rate it is applied at. */
export const backlog = pausedDrain('c_apply_tps');

/** (c) once, right after (a): the first backlog a freshly copied replica applies. */
export const firstBacklog = pausedDrain('c_first_apply_tps');

/** (c), lockstep stopped by ending the sidecar instead: its process start-up counts in the drain. */
export async function backlogAfterRestart(rig: Rig): Promise<void> {
  const { restart } = rig.system;
  if (restart) await drainBacklog(rig, 'c_restart_apply_tps', restart.stop, restart.start);
}

async function drainBacklog(
  rig: Rig,
  figure: string,
  pause: () => Promise<void>,
  resume: () => Promise<void>,
): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (${figure}) backlog of ${BACKLOG_SECONDS} s of pgbench`);
  await pause();
  const h0 = await historyCount(p);
  await pgbench(p, ['-n', '-c', '4', '-j', '2', '-T', String(BACKLOG_SECONDS)]);
  const txns = (await historyCount(p)) - h0;
  const m = await mark(p);
  // Not timed, and for every system: native's launcher needs it, and in that quiet time the
  // bgwriter logs a running_xacts with nothing running, which lets a slot's restart_lsn reach the
  // end of the previous drain. Waited by native only, lockstep re-decoded the whole previous
  // backlog at each resume (0.4-0.5 s, restart_lsn 71-148 MB behind) and native did not.
  await sleep(LAUNCHER_WAIT_MS);
  const t0 = performance.now();
  await resume();
  const drained = await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${m})`);
  record(rig, figure, txns / ((drained - t0) / 1000));
  await check(rig, figure);
}

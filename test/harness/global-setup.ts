import {
  createRunDirectory,
  sweepRunDirectory,
  sweepStaleRunDirectories,
} from '../../adapters/local-postgres/run-directory.js';
import { sweepNatsServers, sweepStaleNatsServers } from '../support/nats-sweep.js';

/**
 * vitest global setup: sweeps what an interrupted earlier run left, gives the
 * workers one run directory, and at the end stops and removes everything in it,
 * also the clusters of a worker that crashed.
 */
export default function setup(): () => void {
  sweepStaleNatsServers();
  sweepStaleRunDirectories();
  const dir = createRunDirectory();
  process.env.LOCKSTEP_TEST_RUN_DIR = dir;
  const teardown = () => {
    sweepNatsServers(dir);
    sweepRunDirectory(dir, { removeAll: true });
  };
  process.once('exit', teardown);
  return teardown;
}

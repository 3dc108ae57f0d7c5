import { readFileSync } from 'node:fs';
import { postgresCluster } from '../../../adapters/postgres/setup/postgres-setup.js';
import { setReplicationPaused } from '../../../plugin/attach/pause-replication.js';
import type { LockstepConfig } from '../../../plugin/config/config-schema.js';
import { loadConfig } from '../../../plugin/config/load-config.js';
import { LockstepProcess, lockstep, writeConfig } from '../../../test/support/lockstep-process.js';
import type { System } from '../system.js';

/** The bench attaches with this version: its control schema never predates pause. */
const noUpgrade = async () => undefined;

/**
 * lockstep as a user runs it: `lockstep attach` (the initial copy), then
 * `lockstep run` (the sidecar), both the built CLI in their own process.
 * (a) ends when a marker written after attach is on both replicas: the
 * sidecar's start-up and catch-up count.
 */
export function lockstepSystem(): System {
  let config: ReturnType<typeof writeConfig> | null = null;
  /** The configuration as lockstep reads it, loaded once (not inside the timed resume). */
  let loaded: LockstepConfig | null = null;
  let sidecar: LockstepProcess | null = null;
  let peak = 0;
  const sample = () => {
    const pid = sidecar?.child.pid;
    if (!pid) return;
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (hwm) peak = Math.max(peak, Number(hwm[1]) / 1024);
    } catch {
      // exited
    }
  };
  const start = () => {
    sidecar = new LockstepProcess(['run', '--config', (config as { file: string }).file], {
      LOCKSTEP_LOG_LEVEL: 'warn',
    });
  };
  const stopSidecar = async () => {
    sample();
    sidecar?.kill('SIGTERM');
    await sidecar?.exited;
    sidecar = null;
  };
  return {
    name: 'lockstep',
    needsSchema: true,
    replicating: true,
    async sync(primary, replicas) {
      config = writeConfig(primary, replicas);
      const attached = await lockstep(['attach', '--config', config.file]);
      if (attached.code !== 0) throw new Error(`attach failed:\n${attached.output}`);
      start();
      loaded = loadConfig(config.file);
    },
    async pause() {
      await setReplicationPaused(postgresCluster(), loaded as LockstepConfig, true, noUpgrade);
    },
    async resume() {
      await setReplicationPaused(postgresCluster(), loaded as LockstepConfig, false, noUpgrade);
    },
    restart: {
      stop: stopSidecar,
      async start() {
        start();
      },
    },
    peakRssMB: () => {
      sample();
      return Math.round(peak);
    },
    async stop() {
      await stopSidecar();
      config?.remove();
    },
  };
}

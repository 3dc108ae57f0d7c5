import type { Logger } from 'pino';
import { PgoutputSource } from '../../adapters/postgres/pgoutput-source.js';
import { PgReplicaTarget } from '../../adapters/postgres/replica-target.js';
import { StatusStore } from '../../adapters/postgres/status-store.js';
import { type AttachProgress, attach } from '../attach/attach.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { PrimaryStream } from '../primary/primary-stream.js';
import { Sidecar } from './sidecar.js';

/** Attach progress as log lines (the sidecar's own resyncs). */
function quietProgress(log: Logger): AttachProgress {
  return {
    step: (message) => log.info(message),
    table: (replica, table, rows, done) => {
      if (done) log.info({ replica, table, rows }, `copied ${table} to ${replica}`);
    },
  };
}

/** Builds the sidecar for a configuration: the primary stream, a target per replica, the status store. */
export function createSidecar(config: LockstepConfig, log: Logger): Sidecar {
  return new Sidecar({
    openStream: async (resume, durable) => {
      const source = new PgoutputSource({
        url: config.primary,
        slot: config.slot,
        publication: config.publication,
        durableLsn: durable,
        decodingWorkMem: config.decodingWorkMem,
      });
      const stream = new PrimaryStream(source, {
        resume,
        maxBufferedChanges: Math.min(20_000, config.windowChanges),
      });
      await stream.start();
      return stream;
    },
    targets: config.replicas.map(
      (r) => new PgReplicaTarget(r.name, r.url, config.slot, config.conflicts),
    ),
    status: new StatusStore(config.primary, config.slot),
    log,
    agent: {
      batchRows: config.batch.maxRows,
      batchMs: config.batch.maxMs,
      retryInitialMs: config.retry.initialMs,
      retryMaxMs: config.retry.maxMs,
    },
    windowChanges: config.windowChanges,
    maxLagBytes: config.maxLagBytes,
    resync:
      config.resync === 'auto'
        ? async (replica, stale) => {
            await attach(config, quietProgress(log), {
              resync: [replica],
              sidecarRunsResync: true,
              stale,
            });
          }
        : undefined,
  });
}

import v8 from 'node:v8';
import { loadConfig } from '../config/load-config.js';
import { reportFailure } from './cli-output.js';
import type { RunState } from './sidecar-endpoints.js';

/**
 * `lockstep run`: the sidecar until SIGTERM or SIGINT; a second one stands by.
 * Exits by itself (process.exit), never returns normally.
 */
export async function runCommand(options: { config?: string }, version: string): Promise<void> {
  // A sidecar's live data is small and bounded (the packet window), but V8 lets the heap
  // grow to about four times it between full collections: 1.6 keeps RSS near what is live.
  v8.setFlagsFromString('--heap-growing-percent=60');
  const config = loadConfig(options.config);
  // Only what the sidecar uses is loaded: a restart is back to streaming sooner.
  const [
    { createLogger },
    { migrateControlSchemaWhenReachable },
    { createSidecar, faultFromEnvironment },
    { serveSidecarEndpoints },
    { SidecarHistograms },
  ] = await Promise.all([
    import('../sidecar/logger.js'),
    import('../../adapters/postgres/control-schema.js'),
    import('../sidecar/create-sidecar.js'),
    import('./sidecar-endpoints.js'),
    import('../sidecar/sidecar-histograms.js'),
  ]);
  const log = createLogger(config.log.level);
  // The endpoints answer (/readyz: starting) while the primary is waited for; their
  // modules (prom-client among them) load meanwhile, not before.
  const histograms = new SidecarHistograms(version);
  const run: RunState = { sidecar: null, stopping: false, histograms };
  const serving =
    config.http.port === 0
      ? null
      : serveSidecarEndpoints(config, run).then((endpoints) => {
          log.info(
            { host: endpoints.host, port: endpoints.port },
            `endpoints on http://${endpoints.host}:${endpoints.port} (/healthz /readyz /metrics /status)`,
          );
          return endpoints;
        });
  // A port that cannot be bound ends the process at once, not once the primary answers.
  serving?.catch(reportFailure);
  // A sidecar upgraded in place finds its newer control tables (the decision log) ready;
  // one started while the primary restarts waits for it instead of exiting.
  await migrateControlSchemaWhenReachable('primary', config.primary, (error) =>
    log.warn({ err: error.message }, 'cannot reach the primary: retrying'),
  );
  // A bug must not pass silently: log it with its stack, then exit so a supervisor restarts us.
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, `internal error: ${(reason as Error)?.message ?? String(reason)}`);
    process.exit(1);
  });
  const sidecar = createSidecar(config, log, {
    fault: faultFromEnvironment(config),
    observer: histograms,
  });
  run.sidecar = sidecar;
  const started = sidecar.start();
  started.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
  const endpoints = await serving;
  const stopped = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      run.stopping = true;
      log.info({ signal }, 'stopping: open batches are rolled back, nothing half-applied is kept');
      // Never take longer than 10 s to exit.
      setTimeout(() => process.exit(0), 9_000).unref();
      void sidecar
        .stop()
        .then(() => endpoints?.close())
        .then(resolve, resolve);
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  if (await started) {
    log.info(
      { replicas: config.replicas.map((r) => r.name), slot: config.slot },
      'lockstep is running',
    );
  }
  await stopped;
  log.info('stopped');
  // Everything is closed; a backoff timer still pending must not delay the exit.
  process.exit();
}

import v8 from 'node:v8';
import type { LockstepConfig } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import type { Sidecar } from '../sidecar/sidecar.js';

/** Serves the sidecar's /healthz, /readyz, /metrics and /status (modules loaded only when served). */
async function serveSidecarEndpoints(config: LockstepConfig, sidecar: Sidecar) {
  const [{ sidecarMetrics }, { serveEndpoints }, { readiness }, { readStatus }] = await Promise.all(
    [
      import('../sidecar/sidecar-metrics.js'),
      import('../../adapters/http/http-endpoints.js'),
      import('../sidecar/readiness.js'),
      import('../status/read-status.js'),
    ],
  );
  const metrics = sidecarMetrics(() => sidecar.snapshot());
  return serveEndpoints(config.http.host, config.http.port, {
    readiness: () => readiness(sidecar.snapshot(), config.maxLagBytes),
    metrics: async () => ({ contentType: metrics.contentType, body: await metrics.metrics() }),
    status: () => readStatus(config),
  });
}

/**
 * `lockstep run`: the sidecar until SIGTERM or SIGINT; a second one stands by.
 * Exits by itself (process.exit), never returns normally.
 */
export async function runCommand(options: { config?: string }): Promise<void> {
  // A sidecar's live data is small and bounded (the packet window), but V8 lets the heap
  // grow to about four times it between full collections: 1.6 keeps RSS near what is live.
  v8.setFlagsFromString('--heap-growing-percent=60');
  const config = loadConfig(options.config);
  // Only what the sidecar uses is loaded: a restart is back to streaming sooner.
  const [
    { createLogger },
    { migrateControlSchemaWhenReachable },
    { createSidecar, faultFromEnvironment },
  ] = await Promise.all([
    import('../sidecar/logger.js'),
    import('../../adapters/postgres/control-schema.js'),
    import('../sidecar/create-sidecar.js'),
  ]);
  const log = createLogger(config.log.level);
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
  const sidecar = createSidecar(config, log, { fault: faultFromEnvironment(config) });
  // The sidecar starts first: the endpoints' modules (prom-client among them) load
  // while it waits on the network, instead of before it.
  const started = sidecar.start();
  started.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
  const endpoints = config.http.port === 0 ? null : await serveSidecarEndpoints(config, sidecar);
  if (endpoints)
    log.info(
      { host: endpoints.host, port: endpoints.port },
      `endpoints on http://${endpoints.host}:${endpoints.port} (/healthz /readyz /metrics /status)`,
    );
  const stopped = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
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

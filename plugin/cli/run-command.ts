import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import type { Logger } from 'pino';
import { busSettings } from '../config/bus-settings.js';
import { loadConfig } from '../config/load-config.js';
import type { LiveConfig } from '../sidecar/create-sidecar.js';
import { untilReachable } from '../support/until-reachable.js';
import { reportFailure } from './cli-output.js';
import type { RunState } from './sidecar-endpoints.js';

/** How often the configuration file is read again to notice a change (ms); SIGHUP reloads at once. */
const CONFIG_CHECK_MS = 3_000;

/** `lockstep run`: the sidecar, its endpoints, and configuration reloads; returns when it stopped. */
export async function runSidecar(configFile: string | undefined, version: string): Promise<void> {
  // A sidecar's live data is small and bounded (the packet window), but V8 lets the heap
  // grow to about four times it between full collections: 1.6 keeps RSS near what is live.
  v8.setFlagsFromString('--heap-growing-percent=60');
  const hangups = followHangups();
  // What the configuration in force was read from: an edit during start-up is reloaded after it.
  const configText = configFile ? readConfigText(configFile) : null;
  const config = loadConfig(configFile);
  const bus = busSettings(config);
  if (bus)
    return (await import('./run-bus.js')).runBusPublisher(config, bus, { configFile, version });
  // Only what the sidecar uses is loaded: a restart is back to streaming sooner.
  const [
    { createLogger },
    { migrateControlSchema },
    { createSidecar, faultFromEnvironment, LiveConfig },
    { serveSidecarEndpoints },
    { SidecarHistograms },
  ] = await Promise.all([
    import('../sidecar/logger.js'),
    import('../../adapters/postgres/control/control-schema.js'),
    import('../sidecar/create-sidecar.js'),
    import('./sidecar-endpoints.js'),
    import('../sidecar/sidecar-histograms.js'),
  ]);
  const log = createLogger(config.log.level);
  const live = new LiveConfig(config);
  // The endpoints answer (/readyz: starting) while the primary is waited for; their
  // modules (prom-client among them) load meanwhile, not before.
  const histograms = new SidecarHistograms(version);
  const run: RunState = { sidecar: null, stopping: false, live, histograms };
  const serving =
    config.http.port === 0
      ? null
      : serveSidecarEndpoints(config, run).then((endpoints) => announce(endpoints, log));
  // A port that cannot be bound ends the process at once, not once the primary answers.
  serving?.catch(reportFailure);
  // A sidecar upgraded in place finds its newer control tables (the decision log) ready;
  // one started while the primary restarts waits for it instead of exiting.
  const starting = exitOnSignalWhileStarting();
  await primaryReady(config.primary, log, (node, url) =>
    migrateControlSchema(node, url, config.controlTimeoutMs),
  );
  const sidecar = createSidecar(config, log, {
    fault: faultFromEnvironment(config),
    live,
    observer: histograms,
  });
  run.sidecar = sidecar;
  const reloader = await configReloader(configFile, run, log, live);
  hangups.follow(() => {
    if (!run.stopping) void reloader.reload('SIGHUP');
  });
  const stopWatching = reloader.watchFile(configText);
  // From here a stop must finish what the start began.
  const stopped = stopOnSignal(starting, run, log, async () => {
    stopWatching();
    await sidecar.stop();
    await (await serving?.catch(() => null))?.close();
  });
  const started = sidecar.start();
  started.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
  await serving;
  if (await started) {
    log.info(
      { replicas: live.current.replicas.map((r) => r.name), slot: config.slot },
      'lockstep is running',
    );
  }
  await stopped;
  log.info({ event: 'stopped' }, 'stopped');
  // Everything is closed; a backoff timer still pending must not delay the exit.
  process.exit();
}

/** Waits until the primary is reached and its control schema current; then a bug ends the process. */
export async function primaryReady(
  primary: string,
  log: Logger,
  migrate: (node: string, url: string) => Promise<unknown>,
): Promise<void> {
  await untilReachable(
    () => migrate('primary', primary),
    {
      node: 'primary',
      event: 'primary-unreachable',
      message: 'cannot reach the primary: retrying',
    },
    log,
  );
  // A bug must not pass silently: log it with its stack, then exit so a supervisor restarts us.
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, 'internal error');
    process.exit(1);
  });
}

/** SIGTERM and SIGINT of a long-running command: see {@link exitOnSignalWhileStarting}. */
export interface StopSignals {
  /** From now on a signal calls `stop` instead of exiting at once. */
  started(stop: (signal: NodeJS.Signals) => void): void;
}

/**
 * Until `started`, SIGTERM or SIGINT exits 0 at once: the process still waits
 * for a node (nothing is open that a stop would finish), and a supervisor's
 * stop must not look like a crash; from then on a signal calls the stop
 * given. One listener per signal for the whole process: removing one and
 * adding another drops a signal Node caught but had not yet handed to
 * JavaScript (a SIGTERM right after the control schema was created was lost
 * that way, and `lockstep run` went on running).
 */
export function exitOnSignalWhileStarting(): StopSignals {
  let onSignal: (signal: NodeJS.Signals) => void = () => process.exit(0);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => onSignal(signal));
  return {
    started(stop) {
      // SIGINT after SIGTERM (or the reverse) does not start a second stop beside the first.
      let stopping = false;
      onSignal = (signal) => {
        if (stopping) return;
        stopping = true;
        stop(signal);
      };
    },
  };
}

/** SIGHUP reloads the configuration; one received before the sidecar exists is kept for then. */
function followHangups(): { follow(reload: () => void): void } {
  let pending = false;
  let onHangup: () => void = () => {
    pending = true;
  };
  process.on('SIGHUP', () => onHangup());
  return {
    follow: (reload) => {
      onHangup = reload;
      if (pending) reload();
    },
  };
}

/** Logs where the endpoints listen. */
export function announce<E extends { host: string; port: number }>(endpoints: E, log: Logger): E {
  log.info(
    {
      host: endpoints.host,
      port: endpoints.port,
      paths: '/healthz /readyz /metrics /status',
      event: 'endpoints',
    },
    'endpoints listening',
  );
  return endpoints;
}

/** The configuration file's text, or null when it cannot be read (loadConfig reports why). */
function readConfigText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Resolves once SIGTERM or SIGINT stopped the sidecar (`stop`), within 10 s at the most. */
function stopOnSignal(
  signals: StopSignals,
  run: RunState,
  log: Logger,
  stop: () => Promise<void>,
): Promise<void> {
  return new Promise<void>((resolve) => {
    signals.started((signal) => {
      run.stopping = true;
      // Nothing half-applied is kept.
      log.info({ signal }, 'stopping: open batches roll back');
      // Never take longer than 10 s to exit.
      setTimeout(() => process.exit(0), 9_000).unref();
      void stop().then(resolve, resolve);
    });
  });
}

/** Reloads the configuration on demand, and whenever its file changes (`watchFile`). */
async function configReloader(
  configFile: string | undefined,
  run: RunState,
  log: Logger,
  live: LiveConfig,
) {
  const [{ ConfigReloader }, { watchConfigFile }] = await Promise.all([
    import('../sidecar/reload-config.js'),
    import('../config/config-watch.js'),
  ]);
  const reloader = new ConfigReloader({
    sidecar: run.sidecar as NonNullable<RunState['sidecar']>,
    live,
    load: () => loadConfig(configFile),
    log,
  });
  return {
    reload: (reason: string) => reloader.reload(reason),
    /** Returns a function that stops watching. */
    watchFile: (baseline: string | null): (() => void) =>
      configFile
        ? watchConfigFile(
            configFile,
            CONFIG_CHECK_MS,
            () => {
              if (!run.stopping) void reloader.reload('file changed');
            },
            {
              baseline,
              unsettled: (checks) =>
                log.warn(
                  {
                    event: 'config-unsettled',
                    file: configFile,
                    checks,
                    intervalMs: CONFIG_CHECK_MS,
                  },
                  'config file keeps changing: edit not taken',
                ),
            },
          )
        : () => undefined,
  };
}

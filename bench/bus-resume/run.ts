/**
 * bench:bus-resume — what a publisher's restart costs once the slot trails
 * JetStream's acks by `bus.serverSyncInterval`: pgbench runs against the
 * primary for longer than the interval, the publisher is killed (SIGKILL)
 * and a new one started while pgbench goes on. Prints how many messages the
 * new one's walk back from the end of the bus read (its `bus-publishing` log
 * line), how long until it logged that and until the stream got its first new
 * message, and its peak RSS (VmHWM) then. Prints its numbers; decides nothing.
 * Knobs: BENCH_SYNC_INTERVAL (default 2m), BENCH_SCALE (default 10),
 * BENCH_CLIENTS (default 4), BENCH_CLI (the bundle to run, default
 * dist/lockstep.mjs: another build compares with it).
 */
import { readFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { serverSyncIntervalMs } from '../../plugin/config/bus-settings.js';
import { packetStreamName } from '../../plugin/protocol/packet-bus-names.js';
import { sleep } from '../../plugin/support/sleep.js';
import {
  LockstepProcess,
  lockstep,
  useBuiltCli,
  writeConfig,
} from '../../test/support/lockstep-process.js';
import { NatsCluster } from '../../test/support/nats-cluster.js';
import {
  BASELINE_SETTINGS,
  benchProvider,
  copySchema,
  createBenchTables,
  pgbench,
} from '../support/bench-cluster.js';

useBuiltCli(process.env.BENCH_CLI);

const INTERVAL = process.env.BENCH_SYNC_INTERVAL ?? '2m';
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 4);
const INTERVAL_S = serverSyncIntervalMs({ serverSyncInterval: INTERVAL }) / 1000;
/** Load before the kill: past the interval, so the unconfirmed tail is as long as it gets. */
const LOAD_S = INTERVAL_S + 20;
/** Load after the kill: the new publisher has something to publish. */
const AFTER_S = 30;

/** The process's peak resident set (VmHWM), MB; NaN once it is gone. */
function peakRssMb(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const [primary, replica] = (await Promise.all([
  benchProvider.start({ role: 'primary', name: 'resume-primary', settings: BASELINE_SETTINGS }),
  benchProvider.start({ role: 'replica', name: 'resume-r1', settings: {} }),
])) as [PostgresCluster, PostgresCluster];
const nats = await NatsCluster.start();
const bus = { url: nats.url, replicas: 3, serverSyncInterval: INTERVAL };
const config = writeConfig(primary, [replica], { twoPhase: { tag: false }, bus });
const nc = await connectBus({ servers: nats.url.split(',') }, 'bench-reader').catch(
  async (error: unknown) => {
    await nats.destroy();
    await Promise.all([primary.destroy(), replica.destroy()]);
    throw error;
  },
);
const stream = packetStreamName('lockstep', undefined);
try {
  const jsm = await jetstreamManager(nc);
  const streamEnd = async () => (await jsm.streams.info(stream)).state;
  await createBenchTables(primary, SCALE, 0);
  await copySchema(primary, [replica]);
  const attached = await lockstep(['attach', '--config', config.file]);
  if (attached.code !== 0) throw new Error(`attach failed:\n${attached.output}`);
  const first = new LockstepProcess(['run', '--config', config.file]);
  await waitFor('the first publisher', async () => first.logEvent('bus-publishing'));
  const load = pgbench(primary, ['-c', String(CLIENTS), '-j', '2', '-T', `${LOAD_S + AFTER_S}`]);
  await sleep(LOAD_S * 1000);
  const before = peakRssMb(first.child.pid);
  first.kill('SIGKILL');
  await first.exited;
  const killed = await streamEnd();
  const started = performance.now();
  const next = new LockstepProcess(['run', '--config', config.file]);
  const publishing = await waitFor('the new publisher', async () =>
    next.logEvent('bus-publishing'),
  );
  const logged = performance.now() - started;
  await waitFor('a new message', async () =>
    (await streamEnd()).last_seq > killed.last_seq ? true : undefined,
  );
  const published = performance.now() - started;
  const peak = peakRssMb(next.child.pid);
  next.kill('SIGTERM');
  await next.exited;
  await load;
  console.log(`| bus.serverSyncInterval ${INTERVAL}, pgbench -c ${CLIENTS} -s ${SCALE} | |`);
  console.log('|---|---|');
  console.log(
    `| stream at the kill: messages, MB | ${killed.messages}, ${(killed.bytes / 2 ** 20).toFixed(1)} |`,
  );
  console.log(`| messages the walk read | ${publishing.walked ?? 'not logged'} |`);
  console.log(`| start to \`bus-publishing\` logged, ms | ${Math.round(logged)} |`);
  console.log(`| start to first new message on the stream, ms | ${Math.round(published)} |`);
  console.log(`| new publisher's VmHWM then, MB | ${peak.toFixed(0)} |`);
  console.log(`| killed publisher's VmHWM, MB | ${before.toFixed(0)} |`);
} finally {
  await nc.close();
  config.remove();
  await nats.destroy();
  await Promise.all([primary.destroy(), replica.destroy()]);
}

/**
 * bench:stream — how fast the primary stream decodes, next to the server-side
 * floor for the same WAL.
 *
 *   (a) a pgbench TPC-B backlog (`pgbench -c 4 -j 2 -T $BENCH_PGBENCH_SECONDS`)
 *   (b) one transaction inserting $BENCH_BULK_ROWS rows (default 1,000,000)
 *
 * For each, two slots are created at the same point before the work: lockstep's
 * stream reads one (in a child process, measuring its peak RSS); the other is
 * decoded by the server alone with pg_logical_slot_peek_binary_changes (pgoutput,
 * same publication): the floor no client can beat. Not part of `npm test`.
 *
 * The client's CPU share tells which side is the bottleneck: well below 100%
 * means the stream waited for the walsender. Both the stream and the floor
 * decode with the session's logical_decoding_work_mem set as the sidecar sets
 * it (BENCH_DECODING_WORK_MEM, default 256MB like lockstep's decodingWorkMem);
 * at the server's default 64MB a 1M-row transaction spills to disk on the
 * primary and the walsender sets the pace (BENCH_DECODING_WORK_MEM=64MB).
 *
 * Env: BENCH_PGBENCH_SECONDS (15), BENCH_BULK_ROWS (1000000), BENCH_REPS (3),
 *      BENCH_DECODING_WORK_MEM (256MB), LOCKSTEP_PG_BIN.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { LocalClusterProvider } from '../../adapters/local-postgres/local-cluster.js';
import { pgClientTool } from '../../adapters/local-postgres/pg-binaries.js';
import {
  createReplicationSlot,
  dropReplicationSlot,
  ensurePublication,
} from '../../adapters/postgres/source/replication-slot.js';
import { versionZeroLsn } from '../../plugin/protocol/index.js';
import { type DecodeReport, decodeInChild } from '../../test/support/decode-in-child.js';

const run = promisify(execFile);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 15);
const BULK_ROWS = Number(process.env.BENCH_BULK_ROWS ?? 1_000_000);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const WORK_MEM = process.env.BENCH_DECODING_WORK_MEM ?? '256MB';

const provider = new LocalClusterProvider({ fast: false });
const pgbench = pgClientTool('pgbench', provider.binaries.bin);
if (!pgbench)
  throw new Error('bench:stream needs pgbench (install postgresql-client or set LOCKSTEP_PG_BIN)');
const primary = await provider.start({
  role: 'primary',
  name: 'bench-primary',
  settings: {
    shared_buffers: '512MB',
    max_wal_size: '4GB',
    checkpoint_timeout: '30min',
  },
});
const client = new pg.Client({ connectionString: primary.url });
await client.connect();

async function slotPair(tag: string): Promise<{ ours: string; floor: string; start: string }> {
  const ours = `bench_${tag}_ours`;
  const floor = `bench_${tag}_floor`;
  const a = await createReplicationSlot(primary.url, ours);
  await createReplicationSlot(primary.url, floor);
  return { ours, floor, start: versionZeroLsn(a.consistentPoint) };
}

async function decodeWithStream(
  slot: string,
  start: string,
  packets: number,
): Promise<DecodeReport> {
  return decodeInChild({
    url: primary.url,
    slot,
    publication: 'bench_pub',
    start,
    packets,
    decodingWorkMem: WORK_MEM,
  });
}

/** Runs pgbench against the primary with the given options. */
async function pgbenchRun(args: string[]): Promise<void> {
  await run(pgbench as string, [
    ...args,
    '-h',
    primary.host,
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    'postgres',
  ]);
}

async function decodeOnServer(
  slot: string,
): Promise<{ rows: number; packets: number; seconds: number }> {
  // The same session setting as the stream's (and the sidecar's), so both decode alike.
  await client.query(`SET logical_decoding_work_mem = '${WORK_MEM}'`);
  const t0 = process.hrtime.bigint();
  const { rows } = await client.query<{ rows: string; packets: string }>(
    `SELECT count(*) FILTER (WHERE substr(data, 1, 1) IN ('\\x49', '\\x55', '\\x44')) AS rows,
            count(*) FILTER (WHERE substr(data, 1, 1) = '\\x43') AS packets
       FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
            'proto_version', '1', 'publication_names', 'bench_pub')`,
    [slot],
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rows: Number(rows[0]?.rows), packets: Number(rows[0]?.packets), seconds };
}

async function dropSlots(...slots: string[]): Promise<void> {
  for (const s of slots) await dropReplicationSlot(client, s);
}

const results: {
  stage: string;
  ours: DecodeReport;
  floor: { rows: number; packets: number; seconds: number };
}[] = [];

/** Both the stream's and the floor's decoding sessions use this logical_decoding_work_mem. */
const workMem = WORK_MEM;
console.error(
  `bench:stream on PostgreSQL ${primary.major} (${provider.binaries.bin}), session logical_decoding_work_mem=${workMem}`,
);
await pgbenchRun(['-i', '-q', '-s', '10']);
await client.query('ALTER TABLE pgbench_history REPLICA IDENTITY FULL');
await client.query('CREATE TABLE bulk (id bigint PRIMARY KEY, payload text)');
await ensurePublication(client, 'bench_pub', [
  { schema: 'public', name: 'pgbench_accounts' },
  { schema: 'public', name: 'pgbench_branches' },
  { schema: 'public', name: 'pgbench_tellers' },
  { schema: 'public', name: 'pgbench_history' },
  { schema: 'public', name: 'bulk' },
]);

for (let rep = 1; rep <= REPS; rep++) {
  // (a) pgbench backlog
  const a = await slotPair(`a${rep}`);
  const before = Number(
    (await client.query('SELECT count(*) AS n FROM pgbench_history')).rows[0].n,
  );
  await pgbenchRun(['-n', '-c', '4', '-j', '2', '-T', String(PGBENCH_SECONDS)]);
  const txns =
    Number((await client.query('SELECT count(*) AS n FROM pgbench_history')).rows[0].n) - before;
  await client.query('CHECKPOINT');
  const floorA = await decodeOnServer(a.floor);
  const oursA = await decodeWithStream(a.ours, a.start, txns);
  results.push({ stage: '(a) pgbench TPC-B backlog', ours: oursA, floor: floorA });
  await dropSlots(a.ours, a.floor);

  // (b) one large transaction
  await client.query('TRUNCATE bulk');
  const b = await slotPair(`b${rep}`);
  await client.query(
    `INSERT INTO bulk SELECT g, substr(repeat(md5(g::text), 4), 1, 100) FROM generate_series(1, ${BULK_ROWS}) g`,
  );
  await client.query('CHECKPOINT');
  const floorB = await decodeOnServer(b.floor);
  const oursB = await decodeWithStream(b.ours, b.start, 1);
  results.push({
    stage: `(b) one ${BULK_ROWS.toLocaleString('en')}-row transaction`,
    ours: oursB,
    floor: floorB,
  });
  await dropSlots(b.ours, b.floor);
  console.error(
    `rep ${rep}: (a) ${Math.round(oursA.rows / oursA.seconds)} rows/s, (b) ${Math.round(oursB.rows / oursB.seconds)} rows/s`,
  );
}

await client.end();
await primary.destroy();

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en');
console.log(
  `\nbench:stream — PostgreSQL ${primary.major}, session logical_decoding_work_mem=${workMem}, ${REPS} reps, median (min–max)`,
);
console.log(
  [
    'stage',
    'rows',
    'packets',
    'lockstep rows/s',
    'lockstep packets/s',
    'server floor rows/s',
    'lockstep/floor',
    'client CPU',
    'peak RSS MB',
  ].join(' | '),
);
for (const stage of [...new Set(results.map((r) => r.stage))]) {
  const rs = results.filter((r) => r.stage === stage);
  const ours = rs.map((r) => r.ours.rows / r.ours.seconds);
  const floor = rs.map((r) => r.floor.rows / r.floor.seconds);
  const range = (xs: number[]) =>
    `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
  console.log(
    [
      stage,
      fmt(median(rs.map((r) => r.ours.rows))),
      fmt(median(rs.map((r) => r.ours.packets))),
      range(ours),
      range(rs.map((r) => r.ours.packets / r.ours.seconds)),
      range(floor),
      `${(median(ours) / median(floor)).toFixed(2)}x`,
      `${Math.round(100 * median(rs.map((r) => r.ours.clientCpuShare)))}%`,
      fmt(Math.max(...rs.map((r) => r.ours.peakRssMB))),
    ].join(' | '),
  );
  for (const r of rs) {
    if (r.ours.rows !== r.floor.rows || r.ours.packets !== r.floor.packets) {
      console.log(
        `  ! ${stage}: stream saw ${r.ours.rows} rows/${r.ours.packets} packets, server ${r.floor.rows}/${r.floor.packets}`,
      );
    }
  }
}

/**
 * bench:apply-path — the sidecar's own CPU per transaction on its hot path,
 * with no database in the loop: a pgbench TPC-B backlog is captured once from
 * a real primary (pgoutput messages, as the stream receives them), then
 * replayed $BENCH_REPS times through the same functions the sidecar runs:
 * decode, assemble packets, compact and encode batches of $BENCH_BATCH
 * packets, and serialize the Bind messages as pg would. Prints the CPU (user +
 * system, garbage collection included) per replay and per 1,000 transactions.
 * Decoding points rows into the captured reads, as the sidecar does with its
 * socket's. Not part of `npm test`.
 *
 * Env: BENCH_PGBENCH_SECONDS (10), BENCH_REPS (8), BENCH_BATCH (2500).
 */
import { serialize } from 'pg-protocol';
import { encodeNetChanges } from '../../adapters/postgres/apply/bulk-statement.js';
import {
  PgoutputDecoder,
  startReplicationCommand,
} from '../../adapters/postgres/source/pgoutput-decoder.js';
import { XLOGDATA_HEADER } from '../../adapters/postgres/source/pgoutput-source.js';
import { ReplicationConnection } from '../../adapters/postgres/source/replication-connection.js';
import { PacketAssembler } from '../../plugin/primary/packet-assembler.js';
import {
  type Change,
  compactChanges,
  type PacketPart,
  ZERO_LSN,
} from '../../plugin/protocol/index.js';
import { sleep } from '../../plugin/support/sleep.js';
import { BASELINE_SETTINGS, benchProvider, pgbench } from '../support/bench-cluster.js';

const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const REPS = Number(process.env.BENCH_REPS ?? 8);
const BATCH = Number(process.env.BENCH_BATCH ?? 2500);

/** The backlog's XLogData payloads, each a buffer of its own. */
async function capture(): Promise<Buffer[]> {
  const primary = await benchProvider.start({
    role: 'primary',
    name: 'apply-path',
    settings: BASELINE_SETTINGS,
  });
  try {
    await pgbench(primary, ['-i', '-q', '-s', '10']);
    await primary.query(
      'ALTER TABLE pgbench_history REPLICA IDENTITY FULL; CREATE PUBLICATION pub FOR ALL TABLES',
    );
    await primary.query(`SELECT pg_create_logical_replication_slot('bench', 'pgoutput')`);
    console.error(`capturing pgbench -c 4 -j 2 -T ${PGBENCH_SECONDS}`);
    await pgbench(primary, ['-n', '-c', '4', '-j', '2', '-T', String(PGBENCH_SECONDS)]);
    const connection = await ReplicationConnection.open({ connectionString: primary.url });
    const payloads: Buffer[] = [];
    let last = Date.now();
    const stream = connection.start(startReplicationCommand('bench', 'pub'), (buf, start, end) => {
      if (buf[start] !== 0x77) return; // keepalives
      payloads.push(Buffer.from(buf.subarray(start + XLOGDATA_HEADER, end)));
      last = Date.now();
    });
    stream.ended.catch(() => undefined);
    await stream.started;
    while (payloads.length === 0 || Date.now() - last < 1_000) await sleep(100);
    await connection.close();
    return payloads;
  } finally {
    await primary.destroy();
  }
}

/** One replay; returns the transactions seen and the bytes the Bind/COPY messages carry. */
function replay(payloads: readonly Buffer[]): { txns: number; bytes: number } {
  const decoder = new PgoutputDecoder();
  const assembler = new PacketAssembler({
    resume: { version: 0, lsn: ZERO_LSN },
    maxPartChanges: 10_000,
  });
  let batch: PacketPart[] = [];
  let txns = 0;
  let bytes = 0;
  const flush = () => {
    const changes: Change[] = [];
    for (const part of batch) for (const change of part.changes) changes.push(change);
    for (const net of compactChanges(changes) ?? []) {
      const encoded = encodeNetChanges(net, 'halt');
      if (encoded.deletes) bytes += serialize.bind({ values: [...encoded.deletes.values] }).length;
      for (const update of encoded.updates)
        bytes += serialize.bind({ values: [...update.values] }).length;
      if (encoded.inserts)
        bytes +=
          'data' in encoded.inserts
            ? encoded.inserts.data.length
            : serialize.bind({ values: [...encoded.inserts.values] }).length;
    }
    batch = [];
  };
  for (const payload of payloads) {
    const message = decoder.decode(payload, 0, payload.length, true);
    if (!message) continue;
    const part = assembler.push(message);
    if (!part) continue;
    batch.push(part);
    if (part.final) txns++;
    if (batch.length >= BATCH) flush();
  }
  flush();
  return { txns, bytes };
}

const payloads = await capture();
const cpuMs: number[] = [];
let txns = 0;
for (let rep = 0; rep < REPS; rep++) {
  const before = process.cpuUsage();
  ({ txns } = replay(payloads));
  const used = process.cpuUsage(before);
  cpuMs.push((used.user + used.system) / 1000);
}
const sorted = [...cpuMs].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)] as number;
console.log(
  `bench:apply-path — ${payloads.length} messages, ${txns} transactions, batches of ${BATCH}`,
);
console.log(`CPU per replay, ms: ${cpuMs.map((ms) => ms.toFixed(0)).join(' ')}`);
console.log(
  `median ${median.toFixed(0)} ms = ${((median / txns) * 1000).toFixed(1)} ms per 1,000 transactions`,
);
process.exit(0);

import { jetstreamManager } from '@nats-io/jetstream';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { compareLsn } from '../../plugin/protocol/lsn.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { expectContiguous, readBusMessages } from '../support/nats-packets.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// A small max_payload: a packet of a few thousand rows needs several messages.
const MAX_PAYLOAD = 64 * 1024;
const STREAM = 'LOCKSTEP_LOCKSTEP';
const nats = useNatsCluster({ maxPayload: MAX_PAYLOAD });
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY, payload text)',
});
let configFile = '';
let nextId = 1;

beforeAll(() => {
  const bus = { url: nats.cluster.url, replicas: 3 };
  // No twoPhase settings: a bus configuration starts as it is.
  configFile = writeConfig(clusters.primary, clusters.replicas, { bus }).file;
});

/** Inserts `transactions` transactions of `rows` rows each; returns how many ids exist now. */
async function insert(transactions: number, rows = 1, payloadBytes = 10): Promise<number> {
  for (let i = 0; i < transactions; i++) {
    const from = nextId;
    nextId += rows;
    await clusters.primary.query(
      `INSERT INTO t SELECT g, repeat('x', ${payloadBytes}) FROM generate_series(${from}, ${nextId - 1}) g`,
    );
  }
  return nextId - 1;
}

/** Waits until the bus holds every id inserted so far, each once, in whole packets in order. */
async function expectAllOnce(): Promise<Awaited<ReturnType<typeof readBusMessages>>> {
  const expected = nextId - 1;
  let ids: number[] = [];
  await eventually(async () => {
    ids = expectContiguous(await readBusMessages(nats.cluster.url, STREAM), 't');
    return ids.length >= expected;
  }, `${expected} rows on the bus`);
  const messages = await readBusMessages(nats.cluster.url, STREAM);
  ids = expectContiguous(messages, 't');
  expect(ids).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
  expect(messages[0]?.position).toMatchObject({ version: 1, part: 0 });
  return messages;
}

async function slotConfirmed(): Promise<string> {
  const [row] = await clusters.primary.query<{ lsn: string }>(
    "SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'lockstep'",
  );
  return row?.lsn ?? '0/0';
}

/** The index of the node leading the packet stream in the test cluster (servers are n1, n2, …). */
async function streamLeader(): Promise<number> {
  const nc = await connectBus({ servers: nats.cluster.url.split(',') }, 'test-leader');
  try {
    const info = await (await jetstreamManager(nc)).streams.info(STREAM);
    return Number(info.cluster?.leader?.slice(1)) - 1;
  } finally {
    await nc.close();
  }
}

async function stopped(sidecar: LockstepProcess, signal: NodeJS.Signals = 'SIGTERM') {
  sidecar.kill(signal);
  await sidecar.exited;
}

describe('lockstep run with bus', () => {
  it('refuses a bus URL the client cannot parse at start', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas, {
      bus: { url: 'nats://127.0.0.1:99999' },
    });
    try {
      const port = await lockstep(['run', '--config', config.file], {}, 60_000);
      expect(port.code).toBe(2);
      expect(port.output).toMatch(/bus\.url\b.*valid host and port/);
    } finally {
      config.remove();
    }
  });

  it('publishes a tagged transaction two-phase, never one-phase, when tags are left unset', async () => {
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await insert(1);
      const tagged = nextId++;
      await clusters.primary.query(
        `BEGIN; SELECT pg_logical_emit_message(true, 'lockstep.two_phase', '');
         INSERT INTO t VALUES (${tagged}, 'tagged'); COMMIT;`,
      );
      const messages = await expectAllOnce();
      const last = messages.at(-1);
      const inserted = last?.part.changes.flatMap((c) =>
        c.kind === 'insert' ? [c.row.at(0)] : [],
      );
      expect(inserted).toEqual([String(tagged)]);
      expect(last?.position.final).toBe('two');
    } finally {
      await stopped(sidecar);
    }
  });

  it('publishes each packet once, in order, in messages under max_payload, then confirms the slot', async () => {
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await insert(10);
      await insert(1, 3_000, 100);
      await insert(3);
      const messages = await expectAllOnce();
      const large = messages.filter((m) => m.part.changes.length > 100);
      expect(large.length).toBeGreaterThan(1);
      expect(Math.max(...large.map((m) => m.position.part))).toBeGreaterThan(0);
      const last = messages.at(-1)?.part.header.lsn ?? '0/0';
      await eventually(async () => compareLsn(await slotConfirmed(), last) >= 0, 'slot confirmed');
    } finally {
      await stopped(sidecar);
    }
    expect(await sidecar.exited).toBe(0);
  });

  it('restarts with no duplicate and no gap, after SIGTERM and SIGKILL under writes', async () => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const sidecar = new LockstepProcess(['run', '--config', configFile]);
      const writes = insert(40);
      await eventually(async () => !!sidecar.logEvent('bus-publishing'), 'publishing');
      await stopped(sidecar, signal);
      await writes;
    }
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await expectAllOnce();
    } finally {
      await stopped(sidecar);
    }
  });

  it('stands by while another sidecar publishes, takes over, and records the head for status', async () => {
    const first = new LockstepProcess(['run', '--config', configFile]);
    let second: LockstepProcess | null = null;
    try {
      await eventually(async () => !!first.logEvent('bus-publishing'), 'publishing');
      // Started once the first holds the lock: which one takes it is then not a race.
      second = new LockstepProcess(['run', '--config', configFile]);
      const standby = second;
      await eventually(async () => !!standby.logEvent('standby'), 'standing by');
      await insert(5);
      await expectAllOnce();
      await stopped(first);
      await eventually(async () => !!standby.logEvent('bus-publishing'), 'taking over');
      await insert(3);
      const messages = await expectAllOnce();
      await stopped(standby);
      const [row] = await clusters.primary.query<{ version: string }>(
        'SELECT version::text FROM lockstep.streams',
      );
      expect(Number(row?.version)).toBe(messages.at(-1)?.position.version);
    } finally {
      await stopped(first);
      if (second) await stopped(second);
    }
  });

  it('killed between the ack and the slot confirmation, re-derives and skips what the bus holds', async () => {
    const before = (await readBusMessages(nats.cluster.url, STREAM)).length;
    await insert(6);
    const faulty = new LockstepProcess(['run', '--config', configFile], {
      LOCKSTEP_FAULT: 'after-publish:3',
    });
    expect(await faulty.exited).toBe(null); // SIGKILLed itself
    const messages = await readBusMessages(nats.cluster.url, STREAM);
    const tail = messages.at(-1);
    // The third packet and maybe more sent with it are on the bus.
    expect(messages.length).toBeGreaterThanOrEqual(before + 3);
    // JetStream holds the third packet, the slot does not say so: the window the fault point opens.
    const third = messages[before + 2]?.part.header.lsn ?? '0/0';
    expect(compareLsn(await slotConfirmed(), third)).toBeLessThan(0);
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await expectAllOnce();
      // The bus may have held every packet already: the restart may not have said where it resumes yet.
      await eventually(async () => !!sidecar.logEvent('bus-publishing'), 'publishing');
      expect(sidecar.logEvent('bus-publishing')).toMatchObject({
        version: tail?.position.version,
        sequence: tail?.sequence,
      });
      expect(sidecar.events('bus-refused')).toEqual([]);
    } finally {
      await stopped(sidecar);
    }
  });

  it('SIGKILLed with many messages in flight, goes on after exactly what the bus holds', async () => {
    // A backlog taken in one go: a large packet in many messages, then small ones, all in flight.
    await insert(1, 3_000, 100);
    await insert(30);
    const faulty = new LockstepProcess(['run', '--config', configFile], {
      LOCKSTEP_FAULT: 'after-publish:2',
    });
    expect(await faulty.exited).toBe(null); // SIGKILLed itself
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await expectAllOnce();
      expect(sidecar.events('bus-refused')).toEqual([]);
    } finally {
      await stopped(sidecar);
    }
  });

  it('holds each packet once, in order, with the stream leader killed while messages are in flight', async () => {
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    let killed = -1;
    try {
      await eventually(async () => !!sidecar.logEvent('bus-publishing'), 'publishing');
      const writes = insert(1, 3_000, 100).then(() => insert(40));
      killed = await streamLeader();
      await nats.cluster.kill(killed);
      await writes;
      await expectAllOnce();
    } finally {
      if (killed >= 0) await nats.cluster.restart(killed);
      await stopped(sidecar);
    }
  });

  it('keeps publishing with one NATS node killed', async () => {
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await eventually(async () => !!sidecar.logEvent('bus-publishing'), 'publishing');
      await nats.cluster.kill(0);
      await insert(20);
      await expectAllOnce();
    } finally {
      await nats.cluster.restart(0);
      await stopped(sidecar);
    }
  });

  it('does not confirm the slot while the bus is unreachable, and says so', async () => {
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await eventually(async () => !!sidecar.logEvent('bus-publishing'), 'publishing');
      await insert(2);
      await expectAllOnce();
      const last = (await readBusMessages(nats.cluster.url, STREAM)).at(-1)?.part.header.lsn;
      await eventually(
        async () => compareLsn(await slotConfirmed(), last ?? '0/0') >= 0,
        'confirmed',
      );
      await nats.cluster.killAll();
      await insert(5);
      // Where the unpublished transactions end: an idle point before them (WAL of lockstep's
      // own bookkeeping, nothing to publish) may still be confirmed, nothing of theirs.
      const [{ lsn: written }] = (await clusters.primary.query<{ lsn: string }>(
        'SELECT pg_current_wal_lsn()::text AS lsn',
      )) as [{ lsn: string }];
      await eventually(async () => !!sidecar.logEvent('bus-unavailable'), 'bus-unavailable');
      expect(compareLsn(await slotConfirmed(), written)).toBeLessThan(0);
      await nats.cluster.restartAll();
      await expectAllOnce();
      const published = (await readBusMessages(nats.cluster.url, STREAM)).at(-1)?.part.header.lsn;
      expect(compareLsn(published ?? '0/0', last ?? '0/0')).toBeGreaterThan(0);
      await eventually(
        async () => compareLsn(await slotConfirmed(), published ?? '0/0') >= 0,
        'slot moves on with them',
      );
    } finally {
      await nats.cluster.restartAll();
      await stopped(sidecar);
    }
  });
});

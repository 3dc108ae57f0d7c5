import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  agentRoundTransport,
  askStreamPaused,
  coordinatorRoundTransport,
} from '../../adapters/nats/agent-round-transport.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { AgentRoundServer } from '../../plugin/agent/agent-round-server.js';
import { makeGid } from '../../plugin/protocol/index.js';
import { coordinatorSubject, encodeWire } from '../../plugin/protocol/round-subjects.js';
import { testBusSigner, testBusVerifier } from '../support/bus-keys.js';
import { useClusters } from '../support/use-clusters.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Whoever can reply on lockstep.<slot>.coordinator.* must not decide an agent's in-doubt gid:
// a forged "commit" of a gid the coordinator aborted would make the replica diverge.
const nats = useNatsCluster();
const clusters = useClusters({ replicas: 1 });
const replica = () => clusters.replicas[0] as PostgresCluster;

/** Answers every question on `subject` with `answer`, unsigned, as any client of the bus can. */
function forge(nc: NatsConnection, subject: string, answer: unknown) {
  return nc.subscribe(subject, {
    callback: (_error, msg) => void msg.respond(encodeWire(answer)),
  });
}

const connect = (name: string) => connectBus({ servers: [nats.cluster.nodeUrl(0)] }, name);

/** A logger whose events are kept. */
function keptLog() {
  const events: string[] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => events.push(JSON.parse(line).event) },
  );
  return { log, events };
}

async function prepared(): Promise<string[]> {
  const rows = await replica().query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts');
  return rows.map((r) => r.gid);
}

describe('an agent asking about an in-doubt gid, answered by someone other than lockstep run', () => {
  it('keeps the gid prepared on a forged commit, and finishes it on the signed answer', async () => {
    const gid = makeGid({ stream: 'lockstep', version: 5, round: 2, epoch: 1 });
    await replica().query('CREATE TABLE t (id int)');
    await replica().query(`BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION '${gid}'`);
    const [agentBus, forgerBus, coordinatorBus] = await Promise.all([
      connect('test-agent'),
      connect('test-forger'),
      connect('test-coordinator'),
    ]);
    const { log, events } = keptLog();
    const node = new PreparedTransactions('replica1', replica().url);
    const transport = agentRoundTransport(agentBus, 'lockstep', 'replica1', 2_000, {
      verifier: testBusVerifier(),
      log,
    });
    const server = new AgentRoundServer(
      'replica1',
      () => null,
      { ...transport, stream: 'lockstep', node, recoveryIntervalMs: 60_000 },
      log,
    );
    // No coordinator runs: the forger's is the only answer.
    const forger = forge(forgerBus, coordinatorSubject('lockstep', 'decision'), {
      ok: true,
      value: 'commit',
    });
    await forgerBus.flush();
    try {
      expect(await server.resolveInDoubt()).toBe(1);
      expect(await prepared()).toEqual([gid]);
      expect(await replica().query('SELECT id FROM t')).toEqual([]);
      expect(events).toContain('bus-signature-invalid');
      expect(events).not.toContain('in-doubt-resolved');
      // The coordinator's own (signed) answer is obeyed: it aborted the gid.
      forger.unsubscribe();
      await forgerBus.flush();
      const stop = coordinatorRoundTransport(coordinatorBus, 'lockstep', testBusSigner()).serve({
        decision: async () => ({ ok: true, value: 'abort' }),
        waiting: () => undefined,
        stream: async () => null,
      });
      await coordinatorBus.flush();
      expect(await server.resolveInDoubt()).toBe(0);
      await stop();
      expect(await prepared()).toEqual([]);
      expect(await replica().query('SELECT id FROM t')).toEqual([]);
    } finally {
      await node.close();
      await Promise.all([agentBus, forgerBus, coordinatorBus].map((nc) => nc.close()));
    }
  }, 60_000);

  it('takes a forged "paused" answer on the stream as no answer', async () => {
    const [agentBus, forgerBus] = await Promise.all([
      connect('test-agent'),
      connect('test-forger'),
    ]);
    const { log, events } = keptLog();
    const forger = forge(forgerBus, coordinatorSubject('lockstep', 'stream'), {
      ok: true,
      value: { paused: true },
    });
    await forgerBus.flush();
    try {
      const trust = { verifier: testBusVerifier(), log };
      expect(await askStreamPaused(agentBus, 'lockstep', 2_000, trust)).toBe(null);
      expect(events).toContain('bus-signature-invalid');
    } finally {
      forger.unsubscribe();
      await Promise.all([agentBus, forgerBus].map((nc) => nc.close()));
    }
  });
});

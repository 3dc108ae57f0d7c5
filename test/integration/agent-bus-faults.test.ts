import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import { coordinatorSubject, decodeWire } from '../../plugin/protocol/round-subjects.js';
import { BusPackets } from '../support/bus-packets.js';
import { appliedVersion } from '../support/compare-nodes.js';
import { lockstep, startAgent } from '../support/lockstep-process.js';
import { useAgentStream } from '../support/use-agent-stream.js';

// Packets are published by the test itself: what lockstep run never sends, on a stream it controls.
const stream = useAgentStream();
const { clusters, replica, rowsOn } = stream;
let nc: NatsConnection;
let settings: BusSettings;
let packets: BusPackets;
/** The version attach placed the replicas at. */
let base = 0;

beforeAll(() => {
  ({ nc, settings, base } = stream);
  packets = new BusPackets(nc, settings, stream.relation);
});

describe('lockstep agent against a stream it cannot follow', () => {
  it('applies packets published in parts, then waits at a two-phase packet for its round', async () => {
    const waiting = nc.subscribe(coordinatorSubject('lockstep', 'waiting'));
    await packets.publish(base + 1, [1, 2, 3]);
    await packets.publish(base + 2, [4, 5, 6, 7, 8, 9], 'one', 3);
    await packets.publish(base + 3, [10], 'two');
    const agent = startAgent(clusters.configFile, 'replica1');
    try {
      // No coordinator runs: the agent parks at the packet and tells the coordinator's subject.
      for await (const message of waiting) {
        const packet = decodeWire<{ version: number; whole: boolean }>(message.data);
        if (packet.version === base + 3) {
          expect(packet.whole).toBe(true);
          break;
        }
      }
      // Everything before the two-phase packet is in, nothing of it.
      expect(await appliedVersion(replica(0))).toBe(base + 2);
      expect(await rowsOn(replica(0))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      waiting.unsubscribe();
      agent.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
    }
  });

  it('stops with the resync fix when retention removed the packet the replica needs next', async () => {
    for (let v = base + 4; v <= base + 10; v++) await packets.publish(v, [100 + v]);
    // Retention at work: only the newest packets are left.
    await (await jetstreamManager(nc)).streams.purge(settings.stream, { keep: 3 });
    const stopped = await lockstep(
      ['agent', '--config', clusters.configFile, '--replica', 'replica2'],
      {},
      60_000,
    );
    expect(stopped.output).toMatch(
      new RegExp(`\\[replica2\\] the bus no longer holds packet ${base + 1} `),
    );
    expect(stopped.code).toBe(1);
    expect(stopped.output).toMatch(
      /fix: copy the replica anew: lockstep attach .*--resync replica2/,
    );
    // Nothing was skipped to: the replica stays where it was.
    expect(await appliedVersion(replica(1))).toBe(base);
    expect(await rowsOn(replica(1))).toEqual([]);
  });

  it('brings an older control schema on its replica up to date as it starts', async () => {
    // As attached by a lockstep before 011: a bus migrate upgrades the primary alone.
    await replica(1).query(`DROP TABLE lockstep.migration_gids;
      DELETE FROM lockstep.kysely_migration WHERE name = '011-migration-gids'`);
    // It stops at once here (retention removed its next packet), having upgraded first.
    const stopped = await lockstep(
      ['agent', '--config', clusters.configFile, '--replica', 'replica2'],
      {},
      60_000,
    );
    expect(stopped.code, stopped.output).toBe(1);
    const [table] = await replica(1).query<{ name: string | null }>(
      `SELECT to_regclass('lockstep.migration_gids')::text AS name`,
    );
    expect(table?.name).toBe('lockstep.migration_gids');
  });
});

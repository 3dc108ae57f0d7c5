import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { NatsCluster } from '../support/nats-cluster.js';
import { releasePorts, reservePorts } from '../support/nats-ports.js';

const RESERVATIONS = path.join(os.tmpdir(), 'lockstep-nats-ports');

/** Whether a process with this pid runs (a zombie counts as gone). */
function runs(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

function serverPids(cluster: NatsCluster): number[] {
  return Array.from({ length: cluster.size }, (_, i) => cluster.pid(i) ?? 0);
}

describe('the NATS test cluster', () => {
  it('reserves its ports below the ephemeral range and frees them', () => {
    const ports = reservePorts(6);
    expect(new Set(ports).size).toBe(6);
    for (const port of ports) {
      expect(port).toBeLessThan(32_768);
      expect(readFileSync(path.join(RESERVATIONS, String(port)), 'utf8')).toBe(String(process.pid));
    }
    releasePorts(ports);
    for (const port of ports) expect(existsSync(path.join(RESERVATIONS, String(port)))).toBe(false);
  });

  it('fails its start with the server log when a node cannot listen', async () => {
    // Whoever holds the port, the start fails at once with the cause, not after an election timeout.
    const blocker = net.createServer();
    const taken = await new Promise<number>((resolve) =>
      blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as net.AddressInfo).port)),
    );
    try {
      await expect(NatsCluster.start({ size: 1, clientPort: taken })).rejects.toThrow(
        /node n1 exited[\s\S]*address already in use/,
      );
    } finally {
      blocker.close();
    }
  });

  it('leaves no server running after destroy, a paused one included', async () => {
    const cluster = await NatsCluster.start();
    const pids = serverPids(cluster);
    expect(pids.filter(runs)).toHaveLength(3);
    cluster.signal(1, 'SIGSTOP');
    await cluster.destroy();
    expect(pids.filter(runs)).toEqual([]);
  });

  it('restarts a node with an empty store: it copies every stream again as the same peer', async () => {
    // The harness's last resort for a replica nats-server 2.9 leaves stuck.
    const cluster = await NatsCluster.start();
    const client = await connect({ servers: cluster.url.split(','), name: 'harness-test' });
    try {
      await (await jetstreamManager(client)).streams.add({
        name: 'S',
        subjects: ['s.>'],
        num_replicas: 3,
      });
      const js = jetstream(client);
      // A publish that times out (no stream leader yet, a busy machine) is sent again under
      // the same message id: JetStream stores it once.
      let sent = 0;
      const publish = async (n: number) => {
        for (let i = 0; i < n; i++, sent++)
          for (let attempt = 1; ; attempt++) {
            try {
              await js.publish('s.x', new TextEncoder().encode(`${sent}`), { msgID: `m${sent}` });
              break;
            } catch (error) {
              if (attempt >= 10 || !/timeout/i.test((error as Error).message)) throw error;
            }
          }
      };
      await publish(300);
      await cluster.restartWithEmptyStore(2);
      // n3 may have led S: publishing waits for a leader and n3's copy.
      await cluster.caughtUp({ streams: ['S'] });
      await publish(300);
      await cluster.caughtUp({ streams: ['S'] });
      expect(await cluster.copyEnds('S')).toEqual([600, 600, 600]);
      // With its store kept, the node would have restored its 300 messages first.
      // (From the start of its log: "not current" warnings can fill the end of it.)
      expect(cluster.logTails('start').n3).toMatch(/Server is ready/);
      expect(cluster.logTails('start').n3).not.toMatch(
        /Restored \d+ messages for stream '\$G > S'/,
      );
    } finally {
      await client.close();
      await cluster.destroy();
    }
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import { BusRefusedError } from '../../plugin/ports/packet-bus.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { packetMessage } from '../support/nats-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// The publisher pipelines appends, each expecting the sequence before it. A foreign message that
// lands between two of ours takes the first one's sequence (refused), and the next one in flight
// (expecting exactly that sequence) is stored after it, signed: the resume walk must still find it.
const nats = useNatsCluster();

function otherKeyFile(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-forger-'));
  const file = path.join(dir, 'forger.pem');
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return file;
}

describe('a foreign message that wins a sequence while ours are in flight', () => {
  it('is removed on resume, not kept behind our next message', async () => {
    const bus = { url: nats.cluster.url, replicas: 3, maxAge: '1h', maxBytes: '64MB' };
    const ours = busSettings({ slot: 'pipelined', bus: { ...busKeyFiles(), ...bus } });
    const theirs = busSettings({
      slot: 'pipelined',
      bus: { signingKeyFile: otherKeyFile(), ...bus },
    });
    if (!ours || !theirs) throw new Error('no bus');
    const log = await openPacketLog(ours, 'test');
    const forger = await openPacketLog(theirs, 'test-forger');
    try {
      for (let v = 1; v <= 2; v++) {
        const { body, position } = packetMessage(v);
        await log.appender(v - 1).append(body, position);
      }
      // Ours for versions 3 and 4 are in flight (expecting 2, then 3) when the forger stores 3.
      const forged = packetMessage(3);
      expect(await forger.appender(2).append(forged.body, forged.position)).toBe(3);
      const appender = log.appender(2);
      const [third, fourth] = [packetMessage(3), packetMessage(4)];
      const results = await Promise.allSettled([
        appender.append(third.body, third.position),
        appender.append(fourth.body, fourth.position),
      ]);
      expect(results[0]).toMatchObject({ status: 'rejected' });
      expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(BusRefusedError);
      expect(results[1]).toEqual({ status: 'fulfilled', value: 4 });
      // The slot confirmed up to version 2 (0/20): 3 and 4 are above it.
      const plan = await busResume(
        log,
        async () => ({ version: 4, lsn: '0/40' as Lsn }),
        async () => '0/21' as Lsn,
      );
      expect(plan.resume.version).toBe(2);
      expect(plan.repaired).toMatchObject({ from: 3, unsigned: true });
    } finally {
      await forger.close();
      await log.close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { BusPackets } from '../support/bus-packets.js';
import { appliedVersion, eventually } from '../support/compare-nodes.js';
import { lockstep, startAgent } from '../support/lockstep-process.js';
import { useAgentStream } from '../support/use-agent-stream.js';

// A stream upgraded to signing: it still begins with the older lockstep's unsigned packets.
const stream = useAgentStream();
const { clusters, replica, rowsOn } = stream;

describe('lockstep agent after an upgrade to signed packets', () => {
  it('goes on past the unsigned packets of the older lockstep, which it does not need', async () => {
    const { base } = stream;
    const unsigned = new BusPackets(stream.nc, stream.settings, stream.relation, null);
    const signed = new BusPackets(stream.nc, stream.settings, stream.relation);
    // Version `base`, which the replicas already hold: the stream's first message, unsigned.
    await unsigned.publish(base, [100]);
    await signed.publish(base + 1, [1]);
    await signed.publish(base + 2, [2]);
    const agent = startAgent(clusters.configFile, 'replica1');
    let exit: number | null | undefined;
    void agent.exited.then((code) => {
      exit = code;
    });
    try {
      // Before the fix, placing the agent checked the first message's signature: exit 1 at start.
      await eventually(
        async () => exit !== undefined || (await appliedVersion(replica(0))) === base + 2,
        `version ${base + 2} applied`,
      );
      expect(agent.events('bus-signature-invalid')).toEqual([]);
      expect(exit).toBeUndefined();
    } finally {
      agent.kill('SIGTERM');
    }
    expect(await agent.exited).toBe(0);
    expect(await rowsOn(replica(0))).toEqual([1, 2]);
  });

  it('stops at an unsigned packet it needs, and says to resync the replica', async () => {
    const unsigned = new BusPackets(stream.nc, stream.settings, stream.relation, null);
    await unsigned.publish(stream.base + 3, [3]);
    const stopped = await lockstep(
      ['agent', '--config', clusters.configFile, '--replica', 'replica1'],
      {},
      60_000,
    );
    expect(stopped.code).toBe(1);
    expect(stopped.output).toMatch(/"sequence":4,"signed":false,"event":"bus-signature-invalid"/);
    expect(stopped.output).toMatch(/predates the upgrade to signing/);
    expect(stopped.output).toMatch(/lockstep attach --config F --resync replica1/);
    expect(await rowsOn(replica(0))).toEqual([1, 2]);
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { BusSigner } from '../../adapters/nats/bus-signing.js';
import { requestSignedBytes, SIGNATURE_HEADER } from '../../plugin/protocol/bus-signed-bytes.js';
import {
  type AgentVerb,
  agentSubject,
  decodeWire,
  encodeWire,
  type WireReply,
} from '../../plugin/protocol/round-subjects.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { testBusSigner } from '../support/bus-keys.js';
import { BusPackets } from '../support/bus-packets.js';
import { appliedVersion, eventually } from '../support/compare-nodes.js';
import { lockstep, startAgent } from '../support/lockstep-process.js';
import { useAgentStream } from '../support/use-agent-stream.js';

// Only lockstep run's key makes a message the agents trust: forged ones come from the test.
const stream = useAgentStream();
const { clusters, replica, rowsOn } = stream;
/** Packets signed with this run's key, as lockstep run signs them. */
let genuine: BusPackets;
/** The same packets, encoded the same, signed with a key of the attacker's. */
let forged: BusPackets;
let base = 0;
let nc: NatsConnection;
const attacker = new BusSigner(generateKeyPairSync('ed25519').privateKey);

beforeAll(() => {
  ({ nc, base } = stream);
  genuine = new BusPackets(nc, stream.settings, stream.relation);
  forged = new BusPackets(nc, stream.settings, stream.relation, attacker);
});

/** Asks `verb` of replica2's agent, signed by `signer` (null: unsigned). */
async function ask(verb: AgentVerb, body: unknown, signer: BusSigner | null) {
  const subject = agentSubject('lockstep', 'replica2', verb);
  const data = encodeWire(body);
  const h = headers();
  if (signer) h.set(SIGNATURE_HEADER, signer.sign(requestSignedBytes(subject, data)));
  const reply = await nc.request(subject, data, { timeout: 10_000, headers: h });
  return decodeWire<WireReply<unknown>>(reply.data);
}

describe('lockstep agent trusts only what lockstep run signed', () => {
  it('refuses requests not signed by lockstep run, and obeys signed ones', async () => {
    await genuine.publish(base + 1, [1]);
    // replica1's agent only applies the genuine packet: the next case forges the one after it.
    const other = startAgent(clusters.configFile, 'replica1');
    const agent = startAgent(clusters.configFile, 'replica2');
    try {
      let answer: WireReply<unknown> | null = null;
      for (let i = 0; i < 60 && !answer?.ok; i++) {
        answer = await ask('applied', { epoch: 1 }, testBusSigner()).catch(() => null);
        if (!answer?.ok) await new Promise((resolve) => setTimeout(resolve, 500));
      }
      expect(answer?.ok).toBe(true);
      const prepare = {
        epoch: 1_000_000,
        request: { gid: 'lockstep_9_9', round: 9, from: base + 1, to: base + 1, toLsn: '0/0' },
      };
      const refusal = { ok: false, error: 'refused: the request is not signed by lockstep run' };
      expect(await ask('prepare', prepare, attacker)).toEqual(refusal);
      expect(await ask('commit', { epoch: 1_000_000, gid: 'lockstep_9_9' }, null)).toEqual(refusal);
      // A signed request does not pass on another subject: the subject is signed too.
      const subject = agentSubject('lockstep', 'replica1', 'rollback');
      const data = encodeWire({ epoch: 1_000_000, gid: 'lockstep_9_9' });
      const h = headers();
      h.set(SIGNATURE_HEADER, testBusSigner().sign(requestSignedBytes(subject, data)));
      const moved = await nc.request(agentSubject('lockstep', 'replica2', 'rollback'), data, {
        timeout: 10_000,
        headers: h,
      });
      expect(decodeWire(moved.data)).toEqual(refusal);
      // The replies come over NATS, the log lines over a pipe: either may arrive first.
      const refused = () => agent.events('bus-signature-invalid').length;
      await eventually(async () => refused() >= 3, 'three refusals logged', 10_000);
      expect(refused()).toBe(3);
      expect(agent.output).not.toContain('lockstep_9_9');
      // Both agents apply the genuine packet before they are stopped: nothing here waited for replica2's.
      for (const r of [replica(0), replica(1)])
        for (let i = 0; i < 60 && (await appliedVersion(r)) < base + 1; i++)
          await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      for (const p of [agent, other]) p.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      expect(await other.exited).toBe(0);
    }
    expect(await rowsOn(replica(1))).toEqual([1]);
    expect(await rowsOn(replica(0))).toEqual([1]);
  });

  it('applies nothing of a forged packet: the agent stops there, and status shows why', async () => {
    await forged.publish(base + 2, [2]);
    // The stream's second message: attach published nothing.
    const sequence = 2;
    const stopped = await lockstep(
      ['agent', '--config', clusters.configFile, '--replica', 'replica1'],
      {},
      60_000,
    );
    expect(stopped.code).toBe(1);
    expect(stopped.output).toMatch(
      new RegExp(
        `"subject":"lockstep\\.lockstep\\.packets","sequence":${sequence},"signed":true,"event":"bus-signature-invalid"`,
      ),
    );
    expect(stopped.output).toMatch(
      /\[replica1\] message 2 of lockstep\.lockstep\.packets is signed with another key: lockstep run's key did not sign it/,
    );
    // Nothing of the forged packet, and nothing skipped past it.
    expect(await rowsOn(replica(0))).toEqual([1]);
    expect(await appliedVersion(replica(0))).toBe(base + 1);
    const status = await lockstep(
      ['status', '--config', clusters.configFile, '--json'],
      {},
      60_000,
    );
    const shown = (JSON.parse(status.stdout) as LockstepStatus).replicas.find(
      (r) => r.name === 'replica1',
    );
    expect(shown?.state).toBe('halted');
    expect(shown?.error).toMatch(
      /message 2 of lockstep\.lockstep\.packets is signed with another key/,
    );
  });
});

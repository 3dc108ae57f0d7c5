import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { retentionLost } from '../../adapters/nats/packet-consumer.js';
import { AgentStatusPublisher } from '../../plugin/agent/agent-status-publisher.js';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import { type LockstepError, NotLandedError } from '../../plugin/ports/lockstep-error.js';
import type { AgentStatusRecord } from '../../plugin/protocol/agent-status-record.js';
import { type Lsn, PacketNotPastError } from '../../plugin/protocol/index.js';
import { notPastError } from '../../plugin/replica/not-past-error.js';
import { streamingAgent } from '../support/streaming-agent.js';

/** The state an agent that ended with `halted` reports. */
function reportedState(halted: LockstepError): string | undefined {
  const writer = { put: async (_: AgentStatusRecord) => undefined };
  const source = { ...streamingAgent().source, halted };
  const publisher = new AgentStatusPublisher(writer, source, pino({ level: 'silent' }));
  publisher.changed();
  return publisher.latest?.state;
}

describe('a halted agent reports stale only when the bus lost what it needs', () => {
  it('is stale after retention took its next packet', () => {
    const lost = retentionLost('replica1', 2, 5, 'LOCKSTEP');
    expect(lost.reason).toBe('retention-lost');
    expect(reportedState(lost)).toBe('stale');
  });

  it('stays halted on a commit that did not land, though its fix names a resync as a fallback', () => {
    expect(reportedState(new NotLandedError('replica1', 'lockstep_g', 'stream'))).toBe('halted');
    expect(reportedState(new NotLandedError('replica1', 'lockstep_g', 'migration'))).toBe('halted');
  });

  it('stays halted on a migration the replica missed: it needs an operator first', () => {
    const missing = new ApplyError({
      node: 'replica1',
      kind: 'migration-missing',
      version: 7,
      migration: 'lockstep_m',
      problem: 'the stream carries migration round lockstep_m, which this replica never committed',
      fix: 'copy replica "replica1" anew: then lockstep attach --resync replica1 --create-schema',
    });
    expect(reportedState(missing)).toBe('halted');
  });

  it('stays halted before a packet it already has under another version: the stream is at fault', () => {
    const held = { version: 7, lsn: '0/70' as Lsn };
    const error = notPastError('replica1', new PacketNotPastError(held, { ...held, version: 8 }));
    expect(error).toMatchObject({
      node: 'replica1',
      kind: 'renumbered',
      reason: 'stream-renumbered',
    });
    expect(error.fix).toContain('lockstep attach --resync replica1');
    expect(reportedState(error)).toBe('halted');
  });
});

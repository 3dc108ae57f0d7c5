import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { AgentStatusPublisher } from '../../plugin/agent/agent-status-publisher.js';
import { agentFreshness, STALE_AFTER_BEATS } from '../../plugin/agent/agent-status-staleness.js';
import { exitCodeForStatus } from '../../plugin/cli/exit-codes.js';
import type { LockstepConfig } from '../../plugin/config/config-schema.js';
import type { AgentStatusReader, StoredAgentStatus } from '../../plugin/ports/agent-status-bus.js';
import type { LockstepCluster, PrimarySession } from '../../plugin/ports/lockstep-cluster.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import {
  type AgentStatusRecord,
  decodeAgentStatus,
  encodeAgentStatus,
} from '../../plugin/protocol/agent-status-record.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { statusHealth } from '../../plugin/status/status-health.js';
import { useFakeTimers } from '../support/fake-timers.js';
import { agentReport } from '../support/status-sample.js';
import { streamingAgent } from '../support/streaming-agent.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(T0 + ms);

const report = (over: Partial<AgentStatusRecord> = {}, beatAt = at(0)) => agentReport(over, beatAt);

describe('agentFreshness', () => {
  const limit = STALE_AFTER_BEATS * 1_000;
  it('is fresh up to the missed-heartbeat limit, stale past it, naming the agent and the fix', () => {
    expect(agentFreshness(report(), at(0), at(limit)).stale).toBe(false);
    const stale = agentFreshness(report(), at(0), at(limit + 1));
    expect(stale).toMatchObject({ stale: true, ageSeconds: 5 });
    if (!stale.stale) throw new Error('expected stale');
    expect(stale.problem).toMatch(/agent of replica1 \(db1 pid 42\) last reported 5s ago/);
    expect(stale.fix).toMatch(/lockstep agent --replica replica1 on db1/);
  });

  it("counts from the older clock: an agent's clock running ahead cannot keep it fresh", () => {
    const ahead = report({}, at(3_600_000));
    expect(agentFreshness(ahead, at(0), at(limit + 1)).stale).toBe(true);
    // The bus's time ahead, the agent's behind: stale too (failing closed).
    expect(agentFreshness(report(), at(3_600_000), at(limit + 1)).stale).toBe(true);
  });
});

describe('decodeAgentStatus', () => {
  it('reads what the agent encodes and refuses what is not a report', () => {
    expect(decodeAgentStatus(encodeAgentStatus(report()))).toEqual(report());
    expect(decodeAgentStatus(new TextEncoder().encode('{"replica":"r"}'))).toBeNull();
    expect(decodeAgentStatus(new TextEncoder().encode('not json'))).toBeNull();
  });
});

const config = {
  slot: 'lockstep',
  primary: 'postgres://primary/db',
  replicas: [
    { name: 'replica1', url: 'postgres://replica1/db' },
    { name: 'replica2', url: 'postgres://replica2/db' },
  ],
} as unknown as LockstepConfig;

/** The primary at version 10; any replica connection fails the test: bus mode must not open one. */
const cluster = {
  primary: async () =>
    ({
      streams: {
        head: async () => ({
          version: 10,
          lsn: toLsn('0/100'),
          commitTime: at(0),
          walLsn: toLsn('0/200'),
          twoPhase: null,
          activeSidecar: 'host:1',
          activeSince: at(0),
          pausedAt: null,
        }),
      },
      streamLockHeld: async () => true,
      replicaStatus: { notes: async () => [] },
      slots: { health: async () => null },
      joinHolds: { read: async () => [] },
      preparedGids: async () => [],
      close: async () => undefined,
    }) as unknown as PrimarySession,
  replica: async () => {
    throw new Error('status connected to a replica in bus mode');
  },
} as unknown as LockstepCluster;

function reader(reports: Map<string, StoredAgentStatus> | Error): AgentStatusReader {
  return {
    bucket: 'LOCKSTEP_LOCKSTEP_AGENTS',
    read: async () => {
      if (reports instanceof Error) throw reports;
      return reports;
    },
  };
}

describe('readStatus with bus', () => {
  it("takes each replica from its agent's report, lag against the primary's version", async () => {
    const fresh = report({
      inDoubt: [{ gid: 'lockstep_g', preparedAt: new Date().toISOString() }],
      heartbeat: { at: new Date().toISOString(), count: 1, everyMs: 1_000 },
      // Its oldest unapplied packet, held by the agent, was committed 30 s ago.
      pendingSince: new Date(Date.now() - 30_000).toISOString(),
    });
    const gone = report({ replica: 'replica2', state: 'streaming' });
    const status = await readStatus(cluster, config, {
      reader: reader(
        new Map([
          ['replica1', { record: fresh, storedAt: new Date() }],
          ['replica2', { record: gone, storedAt: at(0) }],
        ]),
      ),
    });
    expect(status.replicas[0]?.lagSeconds).toBeGreaterThanOrEqual(30);
    // Behind, with no packet its agent held: unknown, never 0.
    expect(status.replicas[1]).toMatchObject({ lagVersions: 3, lagSeconds: null });
    expect(status.replicas[0]).toMatchObject({
      name: 'replica1',
      version: 7,
      lagVersions: 3,
      state: 'streaming',
      source: 'bus',
      reachable: true,
    });
    // Its last report said streaming, long ago: never shown healthy.
    expect(status.replicas[1]).toMatchObject({
      name: 'replica2',
      state: 'unknown',
      reachable: false,
    });
    expect(status.replicas[1]?.error).toMatch(/agent of replica2 .* last reported/);
    expect(status.inDoubt).toMatchObject([{ node: 'replica1', gid: 'lockstep_g' }]);
    expect(exitCodeForStatus(statusHealth(status))).toBe(3);
  });

  it('says the bus is unreachable (exit 3) and knows no replica then', async () => {
    const down = new LockstepError({
      node: 'bus',
      problem: 'cannot connect',
      fix: 'start NATS',
      setting: 'connection',
    });
    const status = await readStatus(cluster, config, { reader: reader(down) });
    expect(status.bus).toMatchObject({ reachable: false });
    expect(status.replicas.map((r) => r.state)).toEqual(['unknown', 'unknown']);
    expect(statusHealth(status).unreachable).toContain('bus');
    expect(exitCodeForStatus(statusHealth(status))).toBe(3);
  });

  it('names the command to start for a replica no agent reports on', async () => {
    const status = await readStatus(cluster, config, {
      reader: reader(new Map()),
      configFile: 'c.yaml',
    });
    expect(status.replicas[0]?.error).toMatch(
      /fix: start lockstep agent --config c.yaml --replica replica1/,
    );
  });
});

describe('a paused stream with bus', () => {
  it('shows a following replica paused in status, and its agent reports it paused once told', async () => {
    const pausedCluster = {
      ...cluster,
      primary: async () => {
        const session = await cluster.primary(config.primary);
        const head = await session.streams.head('lockstep');
        return { ...session, streams: { head: async () => ({ ...head, pausedAt: at(0) }) } };
      },
    } as unknown as LockstepCluster;
    const now = { heartbeat: { at: new Date().toISOString(), count: 1, everyMs: 1_000 } };
    const status = await readStatus(pausedCluster, config, {
      reader: reader(
        new Map([
          ['replica1', { record: report(now), storedAt: new Date() }],
          [
            'replica2',
            {
              record: report({ ...now, replica: 'replica2', state: 'halted' }),
              storedAt: new Date(),
            },
          ],
        ]),
      ),
    });
    expect(status.replicas.map((r) => r.state)).toEqual(['paused', 'halted']);

    const states: string[] = [];
    const writer = { put: async (r: AgentStatusRecord) => void states.push(r.state) };
    const { source } = streamingAgent();
    const publisher = new AgentStatusPublisher(
      writer,
      source,
      pino({ level: 'silent' }),
      2_000,
      60_000,
    );
    publisher.changed();
    publisher.streamPaused = true;
    // A new state goes out at once, whatever the position's pace.
    publisher.changed();
    await new Promise((r) => setTimeout(r, 0));
    expect(states).toEqual(['streaming', 'paused']);
    expect(publisher.latest?.state).toBe('paused');
    await publisher.stop(100);
  });
});

/** A status writer that records the version of each report. */
function versionWriter() {
  const written: (number | null)[] = [];
  const writer = {
    put: async (r: AgentStatusRecord) => {
      written.push(r.version);
    },
  };
  return { written, writer };
}

describe('AgentStatusPublisher', () => {
  it('never waits for the bus: one write in flight, the newest report replacing those not sent', async () => {
    const written: number[] = [];
    let release: () => void = () => undefined;
    const writer = {
      put: (r: AgentStatusRecord) =>
        new Promise<void>((resolve) => {
          written.push(r.version ?? -1);
          release = resolve;
        }),
    };
    const { agent, source } = streamingAgent();
    // No pace: every change is a report, as far as the one write in flight allows.
    const publisher = new AgentStatusPublisher(writer, source, pino({ level: 'silent' }), 2_000, 0);
    publisher.changed();
    for (let v = 2; v <= 5; v++) {
      agent.position = { version: v, lsn: toLsn('0/1') };
      publisher.changed();
    }
    expect(written).toEqual([1]);
    release();
    await new Promise((r) => setTimeout(r, 0));
    expect(written).toEqual([1, 5]);
    release();
  });

  describe('with fake timers', () => {
    useFakeTimers();
    it('reports a new position at its pace, a new state at once', async () => {
      const written: { version: number | null; state: string }[] = [];
      const writer = {
        put: async (r: AgentStatusRecord) => {
          written.push({ version: r.version, state: r.state });
        },
      };
      const { agent, source } = streamingAgent();
      const publisher = new AgentStatusPublisher(
        writer,
        source,
        pino({ level: 'silent' }),
        60_000,
        50,
      );
      publisher.changed();
      for (let v = 2; v <= 5; v++) {
        agent.position = { version: v, lsn: toLsn('0/1') };
        publisher.changed();
      }
      await vi.advanceTimersByTimeAsync(0);
      expect(written).toEqual([{ version: 1, state: 'streaming' }]);
      // The newest position once its pace allows, not one report per change.
      await vi.advanceTimersByTimeAsync(49);
      expect(written).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(written).toEqual([
        { version: 1, state: 'streaming' },
        { version: 5, state: 'streaming' },
      ]);
      // A new state goes out at once, with the position it has then.
      agent.position = { version: 6, lsn: toLsn('0/1') };
      publisher.changed();
      agent.state = 'halted';
      publisher.changed();
      await vi.advanceTimersByTimeAsync(0);
      expect(written.at(-1)).toEqual({ version: 6, state: 'halted' });
      expect(written).toHaveLength(3);
      await publisher.stop(100);
    });

    it('reports a position alone at most once a second by default: a few writes to the bucket however busy', async () => {
      const { written, writer } = versionWriter();
      const { agent, source } = streamingAgent();
      const publisher = new AgentStatusPublisher(writer, source, pino({ level: 'silent' }));
      publisher.changed();
      // An agent applying a batch every 50 ms for 2 s.
      for (let v = 2; v <= 41; v++) {
        await vi.advanceTimersByTimeAsync(50);
        agent.position = { version: v, lsn: toLsn('0/1') };
        publisher.changed();
      }
      await vi.advanceTimersByTimeAsync(0);
      expect(written).toEqual([1, 20, 40]);
      await publisher.stop(100);
    });

    it('keeps reporting when the wall clock steps back', async () => {
      const { written, writer } = versionWriter();
      const { agent, source } = streamingAgent();
      const publisher = new AgentStatusPublisher(
        writer,
        source,
        pino({ level: 'silent' }),
        200,
        50,
      );
      publisher.start();
      publisher.changed();
      await vi.advanceTimersByTimeAsync(0);
      // NTP corrects a clock that ran an hour ahead.
      vi.setSystemTime(Date.now() - 3_600_000);
      agent.position = { version: 2, lsn: toLsn('0/1') };
      publisher.changed();
      await vi.advanceTimersByTimeAsync(2_000);
      expect(written.at(-1)).toBe(2);
      expect(written.length).toBeGreaterThan(5);
      await publisher.stop(100);
    });
  });
});

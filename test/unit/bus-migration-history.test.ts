import { describe, expect, it } from 'vitest';
import { readReportedHistories } from '../../plugin/migrate/bus-migration-status.js';
import type { AgentStatusReader, StoredAgentStatus } from '../../plugin/ports/agent-status-bus.js';
import { storedReport as stored } from '../support/status-sample.js';

const primary = ['001-a', '002-b'];
const entries = primary.map((name) => ({ name, checksum: 'c', appliedAt: '2026-01-01T00:00:00Z' }));

/** A bucket answering each read with the next of `answers`, the last one for ever after. */
function reader(
  answers: Array<Map<string, StoredAgentStatus>>,
): AgentStatusReader & { reads: number } {
  const r = {
    bucket: 'lockstep_AGENTS',
    reads: 0,
    read: async () =>
      answers[Math.min(r.reads++, answers.length - 1)] as Map<string, StoredAgentStatus>,
  };
  return r;
}

describe("migrate status with bus: the replicas' histories from their agents' reports", () => {
  it('names what a replica lacks, and a replica no agent reports on is unreachable', async () => {
    const bucket = reader([
      new Map([['r1', stored('r1', ['001-a'], new Date(Date.now() + 1_000))]]),
    ]);
    const read = await readReportedHistories(bucket, 'lockstep', ['r1', 'r2'], {
      history: entries,
      readAt: new Date(),
    });
    expect(read[0]).toMatchObject({ name: 'r1', differs: true, reachable: true, error: null });
    expect(read[0]?.history?.map((h) => h.name)).toEqual(['001-a']);
    expect(read[1]).toMatchObject({ name: 'r2', reachable: false, history: null });
    expect(read[1]?.error).toMatch(/^\[r2\] no agent reports/);
  });

  it("reads again for a report older than the primary's history that differs, and judges the newer one", async () => {
    const readAt = new Date();
    const old = new Map([['r1', stored('r1', ['001-a'], new Date(readAt.getTime() - 5_000))]]);
    const newer = new Map([['r1', stored('r1', primary, new Date(readAt.getTime() + 5))]]);
    const bucket = reader([old, newer]);
    const read = await readReportedHistories(bucket, 'lockstep', ['r1'], {
      history: entries,
      readAt,
    });
    expect(bucket.reads).toBe(2);
    expect(read[0]).toMatchObject({ name: 'r1', differs: false, reported: { count: 2 } });
  });
});

import { describe, expect, it } from 'vitest';
import { recoverPrepared } from '../../plugin/coordinator/recover-prepared.js';
import type { DecisionStore } from '../../plugin/ports/decision-store.js';
import type { PhaseTwoNode } from '../../plugin/ports/phase-two-node.js';
import { makeGid } from '../../plugin/protocol/index.js';

const gid = makeGid({ stream: 's', version: 4, round: 2, epoch: 1 });

/** A decision log that knows `gid` committed, and whose prune fails with `pruneError`. */
const decisions = (pruneError: unknown): DecisionStore => ({
  decide: async (_, d) => d,
  read: async () => new Map([[gid, 'commit' as const]]),
  lastRound: async () => 2,
  prune: () => Promise.reject(pruneError),
  close: async () => undefined,
});

/** A replica holding `gid` prepared; records what phase two did there. */
function replica(done: string[]): PhaseTwoNode {
  return {
    node: 'r1',
    list: async () => [{ gid, kind: 'stream', ageSeconds: 5, preparedAt: '2026-01-01T00:00:00Z' }],
    commit: async (g) => void done.push(`commit ${g}`),
    rollback: async (g) => void done.push(`rollback ${g}`),
    close: async () => undefined,
  };
}

// Forgetting old decisions is housekeeping. When it fails (a session holds old rows: its lock
// wait ends; the primary stops answering), the pass's phase two stands and is reported, the
// prune's failure is reported apart (recover exits 0, start-over goes on), and the caller (a
// sidecar becoming active) goes on.
describe('recovery whose decision prune fails', () => {
  it.each([
    [
      'a lock wait',
      Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }),
      /a lock it needs was not granted/,
    ],
    ['no answer', new Error('Query read timeout'), /the primary did not answer/],
    ['another error', new Error('permission denied for table decisions'), /permission denied/],
  ])('%s: finishes the prepared gid and reports the prune apart', async (_, error, reason) => {
    const done: string[] = [];
    const report = await recoverPrepared('s', [replica(done)], decisions(error), {
      kinds: ['stream'],
    });
    expect(done).toEqual([`commit ${gid}`]);
    expect(report.resolved).toEqual([
      expect.objectContaining({ gid, node: 'r1', action: 'committed' }),
    ]);
    // Nothing is left prepared: no failure (recover exits 0, start-over goes on), a warning.
    expect(report.failed).toEqual([]);
    expect(report.pruneFailed).toMatch(/forgetting decisions older than an hour/);
    expect(report.pruneFailed).toMatch(reason);
  });
});

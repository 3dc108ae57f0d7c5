import { describe, expect, it } from 'vitest';
import type { AgentStatusReader } from '../../plugin/ports/agent-status-bus.js';
import { summarizeMigrations } from '../../plugin/protocol/migration-summary.js';
import { judgeBusMigrations } from '../../plugin/status/bus-migration-gaps.js';
import { judgeMigrations } from '../../plugin/status/migration-gaps.js';
import { storedReport as stored } from '../support/status-sample.js';

// A migration commits on the replicas first and on the primary last: a replica's report read
// after the primary's history may hold migrations that history does not yet. Not a divergence.

const primaryWith = (names: string[], readAt: Date) => ({
  stream: 'lockstep',
  history: names.map((name) => ({ name, appliedAt: '2026-01-01T00:00:00Z' })),
  preparedGids: [] as string[],
  readAt,
});

const flagged = (gaps: Map<string, { differs: boolean } | null>, name: string) =>
  gaps.get(name)?.differs ?? false;

describe('status over the bus while a migration commits', () => {
  it('does not flag a replica whose report holds a migration the primary committed after its read', async () => {
    const readAt = new Date();
    const reports = new Map([
      ['r1', stored('r1', ['001-a', '002-b'], new Date(readAt.getTime() + 5))],
    ]);
    const reader: AgentStatusReader = { bucket: 'b', read: async () => reports };
    const gaps = await judgeBusMigrations(reader, reports, primaryWith(['001-a'], readAt));
    expect(flagged(gaps, 'r1')).toBe(false);
  });

  it('does not flag an early report read again once it holds migrations committed since', async () => {
    const readAt = new Date();
    // The report in the bucket predates 001: status waits a heartbeat and reads again.
    const reports = new Map([['r1', stored('r1', [], new Date(readAt.getTime() - 1_000))]]);
    // Meanwhile migrate up committed 002 and 003 too: the newer report holds all three.
    const newer = new Map([
      ['r1', stored('r1', ['001-a', '002-b', '003-c'], new Date(readAt.getTime() + 15))],
    ]);
    let reads = 0;
    const reader: AgentStatusReader = {
      bucket: 'b',
      read: async () => {
        reads++;
        return newer;
      },
    };
    const gaps = await judgeBusMigrations(reader, reports, primaryWith(['001-a'], readAt));
    expect(reads).toBe(1);
    expect(flagged(gaps, 'r1')).toBe(false);
  });

  it('still flags a replica with fewer migrations than the primary, read after it', async () => {
    const readAt = new Date();
    // It lacks 001 whatever committed since: it has fewer names than the primary.
    const reports = new Map([['r1', stored('r1', ['002-b'], new Date(readAt.getTime() + 5))]]);
    const reader: AgentStatusReader = { bucket: 'b', read: async () => reports };
    const primary = primaryWith(['001-a', '002-b', '003-c'], readAt);
    const gaps = await judgeBusMigrations(reader, reports, primary);
    expect(gaps.get('r1')).toMatchObject({ differs: true });
    expect(gaps.get('r1')?.error).toMatch(
      /\[r1\].*not the primary's.*fix: lockstep attach --resync r1/s,
    );
  });

  it('flags a replica whose newest migration the primary knows, however many it has', () => {
    // m01..m10 applied before its copy (exempt: attach copied their rows), m11..m13 after.
    const names = Array.from({ length: 13 }, (_, i) => `m${String(i + 1).padStart(2, '0')}`);
    const history = names.map((name, i) => ({
      name,
      appliedAt: new Date(Date.UTC(2026, 0, 1, i)).toISOString(),
    }));
    const copiedAt = new Date(Date.UTC(2026, 0, 1, 9, 30)).toISOString();
    // It lost m11 and m12 but has m13: as many names as could be told apart from a copy's gap.
    const held = [...names.slice(0, 10), 'm13'];
    const summary = { ...summarizeMigrations(held, new Date()), copiedAt };
    const gap = judgeMigrations('r1', 'lockstep', history, { summary }, []);
    expect(gap).toMatchObject({ differs: true });
    // Its newest name unknown to the primary instead: one on its way there, not judged yet.
    const ahead = { ...summarizeMigrations([...names, 'm14'], new Date()), copiedAt };
    expect(judgeMigrations('r1', 'lockstep', history, { summary: ahead }, [])).toBeNull();
    // Nor one applied out of name order (a branch merged late), committed there first.
    const late = { ...summarizeMigrations([...names, 'm12b'], new Date()), copiedAt };
    expect(judgeMigrations('r1', 'lockstep', history, { summary: late }, [])).toBeNull();
  });
});

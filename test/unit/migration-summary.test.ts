import { describe, expect, it } from 'vitest';
import {
  lackingFromSummary,
  summarizeMigrations,
} from '../../plugin/protocol/migration-summary.js';
import { judgeMigrations } from '../../plugin/status/migration-gaps.js';

const primary = ['001-a', '002-b', '003-c', '004-d'];
const at = new Date('2026-01-01T00:00:00Z');
const summary = (names: string[]) => summarizeMigrations(names, at);

describe('a migration history summed up for the bus', () => {
  it('stays small whatever the history: a count, the last name and a digest', () => {
    const long = Array.from({ length: 5_000 }, (_, i) => `${String(i).padStart(5, '0')}-m`);
    const s = summary(long);
    expect(s).toMatchObject({ count: 5_000, last: '04999-m', readAt: at.toISOString() });
    expect(JSON.stringify(s).length).toBeLessThan(200);
  });

  it('sorts by code units, so nodes with other collations agree', () => {
    expect(summary(['b', 'A', 'a']).digest).toBe(summary(['A', 'a', 'b']).digest);
  });

  it('tells which are lacking: none, the newest ones, or a single one; else that it differs', () => {
    expect(lackingFromSummary(primary, summary(primary))).toEqual([]);
    expect(lackingFromSummary(primary, summary(primary.slice(0, 2)))).toEqual(['003-c', '004-d']);
    expect(lackingFromSummary(primary, summary(['001-a', '003-c', '004-d']))).toEqual(['002-b']);
    expect(lackingFromSummary(primary, summary(['001-a', '004-d']))).toBeNull();
    expect(lackingFromSummary(primary, summary([...primary, '005-e']))).toBeNull();
  });

  it('judges a summary as status does: an error naming the replica, the migration and the fix', () => {
    const gap = judgeMigrations(
      'r1',
      's',
      primary,
      { summary: summary(['001-a', '003-c', '004-d']) },
      [],
    );
    expect(gap).toMatchObject({ missing: ['002-b'], differs: true });
    expect(gap?.error).toMatch(/^\[r1\] .*lacks migration 002-b/);
    expect(gap?.error).toContain('lockstep attach --resync r1');
    // A migration gid of the stream prepared (phase two not done): not judged.
    expect(
      judgeMigrations('r1', 's', primary, { summary: summary(['001-a']) }, ['lockstep_s_m17_1']),
    ).toBeNull();
    // Another stream's gid says nothing about this one.
    expect(
      judgeMigrations('r1', 's', primary, { summary: summary(['001-a']) }, ['lockstep_t_m17_1']),
    ).toMatchObject({ differs: true });
  });
});

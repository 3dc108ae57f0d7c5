import { describe, expect, it } from 'vitest';
import {
  copiedBefore,
  lackingFromSummary,
  summarizeMigrations,
} from '../../plugin/protocol/migration-summary.js';
import { judgeMigrations } from '../../plugin/status/migration-gaps.js';

const primary = ['001-a', '002-b', '003-c', '004-d'];
const at = new Date('2026-01-01T00:00:00Z');
const summary = (names: string[]) => summarizeMigrations(names, at);
/** The primary's history, migration i applied on day i + 1 of January. */
const applied = primary.map((name, i) => ({
  name,
  appliedAt: `2026-01-0${i + 1}T00:00:00.000Z`,
}));
/** A copy begun on January 2, noon: after 001-a and 002-b, before 003-c and 004-d. */
const copiedAt = '2026-01-02T12:00:00.000Z';

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
      applied,
      { summary: summary(['001-a', '003-c', '004-d']) },
      [],
    );
    expect(gap).toMatchObject({ missing: ['002-b'], differs: true });
    expect(gap?.error).toMatch(/^\[r1\] .*lacks migration 002-b/);
    expect(gap?.error).toContain('lockstep attach --resync r1');
    // A migration gid of the stream prepared (phase two not done): not judged.
    expect(
      judgeMigrations('r1', 's', applied, { summary: summary(['001-a']) }, ['lockstep_s_m17_1']),
    ).toBeNull();
    // Another stream's gid says nothing about this one.
    expect(
      judgeMigrations('r1', 's', applied, { summary: summary(['001-a']) }, ['lockstep_t_m17_1']),
    ).toMatchObject({ differs: true });
  });

  it("exempts the migrations the primary applied before the replica's copy began, oldest first", () => {
    expect(copiedBefore(applied, copiedAt)).toEqual(['001-a', '002-b']);
    expect(copiedBefore(applied, null)).toEqual([]);
    // Older agents report no copy time: nothing is exempt.
    expect(copiedBefore(applied, undefined)).toEqual([]);
  });

  it('does not report migrations copied before, read directly, and still reports one lacking after', () => {
    const direct = (names: string[]) =>
      judgeMigrations('r1', 's', applied, { names, copiedAt }, []);
    // Attached before attach copied the history: lacks the two applied before its copy.
    expect(direct(['003-c', '004-d'])).toMatchObject({ differs: false, missing: [] });
    // Resynced later: keeps the rows of the rounds it took part in, lacks the oldest.
    expect(direct(['002-b', '003-c', '004-d'])).toMatchObject({ differs: false });
    const gap = direct(['003-c']);
    expect(gap).toMatchObject({ differs: true, missing: ['004-d'] });
    expect(gap?.error).toMatch(/^\[r1\] .*lacks migration 004-d /);
    // Without a copy time (nothing copied): every lacking one is reported.
    expect(
      judgeMigrations('r1', 's', applied, { names: ['003-c', '004-d'], copiedAt: null }, []),
    ).toMatchObject({ differs: true, missing: ['001-a', '002-b'] });
  });

  it("judges a summary with the agent's copy time: with and without the exempt migrations", () => {
    const reported = (names: string[], copied?: string | null) =>
      judgeMigrations(
        'r1',
        's',
        applied,
        { summary: { ...summarizeMigrations(names, at), copiedAt: copied } },
        [],
      );
    // With copiedAt: the exempt ones lacking, all or the oldest, are no divergence.
    expect(reported(['003-c', '004-d'], copiedAt)).toMatchObject({ differs: false });
    expect(reported(['002-b', '003-c', '004-d'], copiedAt)).toMatchObject({ differs: false });
    expect(reported(primary, copiedAt)).toMatchObject({ differs: false });
    // A migration after the copy lacking: reported, newest or single.
    expect(reported(['003-c'], copiedAt)).toMatchObject({ differs: true, missing: ['004-d'] });
    expect(reported(['004-d'], copiedAt)).toMatchObject({ differs: true, missing: ['003-c'] });
    expect(reported(['001-a', '002-b', '003-c'], copiedAt)).toMatchObject({
      differs: true,
      missing: ['004-d'],
    });
    // An older agent (no copiedAt): the lacking exempt ones are reported as before.
    expect(reported(['003-c', '004-d'])).toMatchObject({ differs: true });
    expect(reported(['003-c', '004-d'], null)).toMatchObject({ differs: true });
  });

  it('tells the lacking ones from a summary past the exempt ones', () => {
    const exempt = ['001-a', '002-b'];
    expect(lackingFromSummary(primary, summary(['003-c', '004-d']), exempt)).toEqual([]);
    expect(lackingFromSummary(primary, summary(['002-b', '003-c', '004-d']), exempt)).toEqual([]);
    expect(lackingFromSummary(primary, summary(['003-c']), exempt)).toEqual(['004-d']);
    expect(lackingFromSummary(primary, summary(['003-c', '005-e']), exempt)).toBeNull();
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { adoptReplicas, diffConfig } from '../../plugin/config/config-diff.js';
import { watchConfigFile } from '../../plugin/config/config-watch.js';
import { loadConfig } from '../../plugin/config/load-config.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-config-diff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** A validated configuration (defaults filled in) from what a file would hold. */
function config(input: Record<string, unknown>) {
  const file = path.join(dir, `c${files++}.json`);
  writeFileSync(file, JSON.stringify(input));
  return loadConfig(file, {});
}

const base = {
  primary: 'postgres://app:s3cret@10.0.0.1:5432/app',
  replicas: [
    { name: 'eu', url: 'postgres://app:s3cret@10.0.0.2:5432/app' },
    { name: 'us', url: 'postgres://app:s3cret@10.0.0.3:5432/app' },
  ],
};
const asia = { name: 'asia', url: 'postgres://app:s3cret@10.0.0.4:5432/app' };
/** A replica as loading resolves it (its connection in canonical form). */
const resolved = (replica: { name: string; url: string }) =>
  config({ ...base, replicas: [replica] }).replicas[0];

describe('diffConfig', () => {
  it('finds nothing to do in the same configuration, whatever the order of replicas', () => {
    const reordered = { ...base, replicas: [...base.replicas].reverse() };
    expect(diffConfig(config(base), config(reordered))).toEqual({
      added: [],
      removed: [],
      replaced: [],
      needsRestart: [],
    });
  });

  it('adds and removes replicas by name', () => {
    const next = { ...base, replicas: [base.replicas[1], asia] };
    const change = diffConfig(config(base), config(next));
    expect(change.added).toEqual([resolved(asia)]);
    expect(change.removed).toEqual(['eu']);
    expect(change.needsRestart).toEqual([]);
  });

  it('names every other changed key as needing a restart, never its value', () => {
    const next = {
      ...base,
      primary: 'postgres://app:other-secret@10.0.0.9:5432/app',
      replicas: [
        { ...base.replicas[0], url: 'postgres://app:s3cret@10.0.0.8:5432/app' },
        base.replicas[1],
      ],
      maxLagBytes: 1024,
      twoPhase: { voteTimeoutMs: 9000 },
      batch: { maxRows: 5 },
    };
    const change = diffConfig(config(base), config(next));
    expect([...change.needsRestart].sort()).toEqual(
      ['batch.maxRows', 'maxLagBytes', 'primary', 'twoPhase.voteTimeoutMs'].sort(),
    );
    expect(change.added).toEqual([]);
    expect(change.removed).toEqual([]);
    expect(JSON.stringify(change.needsRestart)).not.toMatch(/secret/);
  });

  it('replaces a replica whose URL changed: it may be another database now', () => {
    const moved = { ...base.replicas[0], url: 'postgres://app:s3cret@10.0.0.8:5432/other' };
    const next = { ...base, replicas: [moved, base.replicas[1]] };
    const change = diffConfig(config(base), config(next));
    expect(change.replaced).toEqual([resolved(moved as { name: string; url: string })]);
    expect(change.added).toEqual([]);
    expect(change.removed).toEqual([]);
    expect(change.needsRestart).toEqual([]);
    expect(adoptReplicas(config(base), change).replicas).toEqual(config(next).replicas);
  });

  it('compares lists as a whole', () => {
    const change = diffConfig(config(base), config({ ...base, tables: ['public.*', 'billing.*'] }));
    expect(change.needsRestart).toEqual(['tables']);
  });
});

describe('adoptReplicas', () => {
  it('changes the replicas only, a replaced one with its new URL', () => {
    const current = config(base);
    const moved = { ...base.replicas[1], url: 'postgres://app@10.0.0.7:5432/app' };
    const next = config({ ...base, maxLagBytes: 1024, replicas: [moved, asia] });
    const adopted = adoptReplicas(current, diffConfig(current, next));
    expect(adopted.replicas).toEqual([
      resolved(moved as { name: string; url: string }),
      resolved(asia),
    ]);
    expect(adopted.maxLagBytes).toBe(current.maxLagBytes);
  });
});

describe('watchConfigFile', () => {
  it('calls back when the content changes, not when it stays the same', async () => {
    const file = path.join(dir, 'watched.json');
    writeFileSync(file, JSON.stringify(base));
    let calls = 0;
    const stop = watchConfigFile(file, 20, () => calls++);
    try {
      writeFileSync(file, JSON.stringify(base));
      await new Promise((r) => setTimeout(r, 200));
      expect(calls).toBe(0);
      writeFileSync(file, JSON.stringify({ ...base, replicas: [asia] }));
      for (let i = 0; i < 100 && calls === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(calls).toBe(1);
    } finally {
      stop();
    }
  });

  it('acts on a changed content only once a second read agrees (a half-written file is not taken)', async () => {
    vi.useFakeTimers();
    // What each read returns in turn: the writer is caught midway once, then done.
    const reads = ['half', 'whole', 'whole', 'whole'];
    const seen: string[] = [];
    let calls = 0;
    const stop = watchConfigFile('unused', 1_000, () => calls++, {
      baseline: 'before',
      settleMs: 100,
      read: async () => {
        const text = reads.shift() ?? 'whole';
        seen.push(text);
        return text;
      },
    });
    try {
      await vi.advanceTimersByTimeAsync(1_100);
      // 'half', then 'whole' a moment later: still changing, nothing is done.
      expect({ seen, calls }).toEqual({ seen: ['half', 'whole'], calls: 0 });
      await vi.advanceTimersByTimeAsync(1_000);
      expect({ seen, calls }).toEqual({ seen: ['half', 'whole', 'whole', 'whole'], calls: 1 });
      await vi.advanceTimersByTimeAsync(3_000);
      expect(calls).toBe(1);
    } finally {
      stop();
      vi.useRealTimers();
    }
  });

  it('says once when the file keeps changing faster than it settles, and again after it settled', async () => {
    vi.useFakeTimers();
    let n = 0;
    let churning = true;
    const notices: number[] = [];
    let calls = 0;
    const stop = watchConfigFile('unused', 1_000, () => calls++, {
      baseline: 'before',
      settleMs: 100,
      read: async () => (churning ? `edit ${n++}` : 'final'),
      unsettled: (checks) => notices.push(checks),
    });
    try {
      await vi.advanceTimersByTimeAsync(4_500);
      expect({ notices, calls }).toEqual({ notices: [], calls: 0 });
      await vi.advanceTimersByTimeAsync(1_000);
      expect({ notices, calls }).toEqual({ notices: [5], calls: 0 });
      await vi.advanceTimersByTimeAsync(10_000);
      expect({ notices, calls }).toEqual({ notices: [5], calls: 0 });
      churning = false;
      await vi.advanceTimersByTimeAsync(1_000);
      expect({ notices, calls }).toEqual({ notices: [5], calls: 1 });
      churning = true;
      await vi.advanceTimersByTimeAsync(5_000);
      expect({ notices, calls }).toEqual({ notices: [5, 5], calls: 1 });
    } finally {
      stop();
      vi.useRealTimers();
    }
  });

  it('calls back for a change made after the configuration was read but before watching began', async () => {
    const file = path.join(dir, 'edited-during-start.json');
    const loaded = JSON.stringify(base);
    writeFileSync(file, JSON.stringify({ ...base, replicas: [asia] }));
    let calls = 0;
    const stop = watchConfigFile(file, 20, () => calls++, { baseline: loaded });
    try {
      for (let i = 0; i < 100 && calls === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(calls).toBe(1);
    } finally {
      stop();
    }
  });
});

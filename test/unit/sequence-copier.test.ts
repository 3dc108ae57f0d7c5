import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { SequenceValue } from '../../plugin/protocol/sequence-values.js';
import { sequenceCopier } from '../../plugin/sidecar/sequence-copier.js';

const values: SequenceValue[] = [{ schema: 'public', name: 't_id_seq', lastValue: '42' }];
const replicas = [
  { name: 'replica1', url: 'r1' },
  { name: 'replica2', url: 'r2' },
];

/** A logger whose lines are kept (level and fields). */
function keptLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const about = (node: string) =>
    lines
      .filter((l) => l.event === 'sequence-sync-failed' && l.node === node)
      .map((l) => (l.level === 40 ? 'warn' : 'debug'));
  return { log, lines, about };
}

/** Lets the copies a period started settle. */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('the in-process sequence copy', () => {
  it('passes over a replica whose last copy still runs; the others are copied every period', async () => {
    const advanced: string[] = [];
    const never = new Promise<number>(() => undefined);
    const copy = sequenceCopier({
      readPrimary: async () => ({ values, held: [] }),
      advance: async (url) => {
        advanced.push(url);
        return url === 'r2' ? never : 1;
      },
      replicas: () => replicas,
      log: keptLog().log,
    });
    for (let period = 0; period < 3; period++) {
      await copy();
      await settled();
    }
    expect(advanced.filter((u) => u === 'r1')).toHaveLength(3);
    expect(advanced.filter((u) => u === 'r2')).toHaveLength(1);
  });

  it('warns of a failing node once per run of failures, then at debug', async () => {
    const outcomes = ['fail', 'fail', 'ok', 'fail'];
    let period = 0;
    const { log, about, lines } = keptLog();
    const copy = sequenceCopier({
      readPrimary: async () => ({ values, held: period === 1 ? ['public.t_id_seq'] : [] }),
      advance: async (url) => {
        if (url === 'r1' && outcomes[period] === 'fail') throw new Error('replica1 down');
        return 1;
      },
      replicas: () => replicas,
      log,
    });
    for (period = 0; period < outcomes.length; period++) {
      await copy();
      await settled();
    }
    expect(about('replica1')).toEqual(['warn', 'debug', 'warn']);
    expect(about('replica2')).toEqual([]);
    expect(about('primary')).toEqual(['warn']);
    expect(lines.find((l) => l.node === 'primary')?.err).toContain('public.t_id_seq');
  });

  it('reports a primary that cannot be read, and copies nothing that period', async () => {
    const advanced: string[] = [];
    const { log, about } = keptLog();
    const copy = sequenceCopier({
      readPrimary: async () => {
        throw new Error('primary down');
      },
      advance: async (url) => {
        advanced.push(url);
        return 1;
      },
      replicas: () => replicas,
      log,
    });
    await copy();
    await copy();
    expect(advanced).toEqual([]);
    expect(about('primary')).toEqual(['warn', 'debug']);
  });
});

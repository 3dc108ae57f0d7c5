import { describe, expect, it } from 'vitest';
import { decodeMigrationWork, encodeMigrationWork } from '../../plugin/protocol/index.js';

describe('migration work (the control event an agent runs)', () => {
  it('decodes what it encodes, with or without a history change', () => {
    for (const history of [
      null,
      { op: 'insert' as const, name: '001-a', checksum: 'abc' },
      { op: 'delete' as const, name: '001-a' },
    ]) {
      const work = { gid: 'lockstep_s_m1_1', sql: 'ALTER TABLE t ADD c int;', history };
      expect(decodeMigrationWork(encodeMigrationWork(work))).toEqual(work);
    }
  });

  it('refuses anything malformed: it is never run', () => {
    for (const content of [
      'not json',
      'null',
      '"text"',
      JSON.stringify({ gid: 'g' }),
      JSON.stringify({ gid: 'g', sql: 1, history: null }),
      JSON.stringify({ gid: 'g', sql: 's', history: { op: 'insert', name: 'n' } }),
      JSON.stringify({ gid: 'g', sql: 's', history: { op: 'drop', name: 'n' } }),
    ])
      expect(decodeMigrationWork(content)).toBeNull();
  });
});

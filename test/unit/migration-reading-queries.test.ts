import { describe, expect, it } from 'vitest';
import { readMigrationReading } from '../../adapters/postgres/control/migration-history.js';

const APPLIED = new Date('2026-01-02T03:04:05.678Z');
const COPIED = new Date('2026-01-01T00:00:00.000Z');

/** A session answering as a replica with both control tables and one migration; records each statement. */
function replicaSession(): { sent: string[]; query(text: string): Promise<{ rows: unknown[] }> } {
  const sent: string[] = [];
  return {
    sent,
    async query(text: string) {
      sent.push(text);
      if (text.includes('to_regclass')) return { rows: [{ known: true, copies: true }] };
      if (text.includes('LEFT JOIN'))
        return { rows: [{ name: '001_a.sql', applied_at: APPLIED, copied_at: COPIED }] };
      if (text.includes('min(copied_at)')) return { rows: [{ copied_at: COPIED }] };
      return { rows: [{ name: '001_a.sql', applied_at: APPLIED }] };
    },
  };
}

describe('reading a replica migration history, as an agent does every heartbeat', () => {
  it('takes one statement once the session has seen the control tables', async () => {
    const session = replicaSession();
    const first = await readMigrationReading(session, 's');
    const before = session.sent.length;
    const second = await readMigrationReading(session, 's');
    expect(session.sent.length - before).toBe(1);
    const expected = {
      migrations: [{ name: '001_a.sql', appliedAt: APPLIED.toISOString() }],
      copiedAt: COPIED.toISOString(),
    };
    expect(first).toEqual(expected);
    expect(second).toEqual(expected);
  });
});

import { describe, expect, it } from 'vitest';
import { controlDbOn } from '../../adapters/postgres/control/control-schema.js';
import { PgStreamsStore } from '../../adapters/postgres/control/streams-store.js';

/**
 * pause and resume branch on the failing statement's SQLSTATE (an old
 * control schema, a dead session): when the session dies inside the
 * transaction, the ROLLBACK fails too, and its error must not replace the
 * statement's (Kysely's transaction() would rethrow the rollback's).
 */
describe('writePause on a session that dies inside the transaction', () => {
  it('reports the failing statement, not the failed rollback', async () => {
    const sent: string[] = [];
    let dead = false;
    const session = {
      query: async (text: string) => {
        sent.push(text.split(/\s+/)[0]?.toLowerCase() ?? '');
        if (dead) throw new Error('Client has encountered a connection error and is not queryable');
        if (/^update/i.test(text)) {
          dead = true;
          throw Object.assign(new Error('terminating connection due to administrator command'), {
            code: '57P01',
          });
        }
        if (/^select/i.test(text))
          return { command: 'SELECT', rowCount: 1, rows: [{ paused_at: null }] };
        return { command: text.toUpperCase(), rowCount: 0, rows: [] };
      },
    };
    const store = new PgStreamsStore(controlDbOn(session as never));
    const error = (await store.writePause('lockstep', true).catch((e: unknown) => e)) as {
      code?: string;
      message: string;
    };
    // The first SELECT sets the transaction's server-side bounds, the second locks the row.
    expect(sent).toEqual(['begin', 'select', 'select', 'update', 'rollback']);
    // The UPDATE's error, with its code.
    expect(error.code).toBe('57P01');
    expect(error.message).toMatch(/administrator command/);
  });
});

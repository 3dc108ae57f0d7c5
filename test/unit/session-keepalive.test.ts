import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { explainIdleEnd } from '../../adapters/postgres/connection/idle-end.js';
import { SessionKeepalive } from '../../adapters/postgres/connection/session-keepalive.js';
import { useFakeTimers } from '../support/fake-timers.js';

/** A client that counts the queries it is sent; each answers when `answer` says so. */
function fakeClient(answer: () => Promise<unknown> = () => Promise.resolve()) {
  const sent: string[] = [];
  const client = {
    query: (text: string) => {
      sent.push(text);
      return answer();
    },
  } as unknown as pg.Client;
  return { client, sent };
}

describe('SessionKeepalive', () => {
  useFakeTimers();

  it('touches the client while the transaction is open, and stops once it is not', async () => {
    const { client, sent } = fakeClient();
    let open = true;
    const keepalive = new SessionKeepalive(100);
    keepalive.start(client, () => open);
    await vi.advanceTimersByTimeAsync(350);
    expect(sent).toEqual(['SELECT 1', 'SELECT 1', 'SELECT 1']);
    open = false;
    await vi.advanceTimersByTimeAsync(500);
    expect(sent).toHaveLength(3);
  });

  it('skips a touch while the session answers other work, and touches once it idles', async () => {
    // A client whose server answers every statement as pg's connection reports it.
    const connection = new EventEmitter();
    const answer = () => {
      connection.emit('commandComplete');
      connection.emit('readyForQuery');
    };
    const sent: string[] = [];
    const client = {
      connection,
      query: async (text: string) => {
        sent.push(text);
        answer();
      },
    } as unknown as pg.Client;
    const keepalive = new SessionKeepalive(100);
    keepalive.start(client, () => true);
    // The applier's own statements, answered between every two looks.
    for (let i = 0; i < 5; i++) {
      answer();
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(sent).toEqual([]);
    // Idle: its own touches' answers are not work, so it touches at every look.
    await vi.advanceTimersByTimeAsync(350);
    expect(sent).toEqual(['SELECT 1', 'SELECT 1', 'SELECT 1']);
    keepalive.stop();
  });

  it('sends one touch at a time to a session that does not answer', async () => {
    const { client, sent } = fakeClient(() => new Promise(() => undefined));
    const keepalive = new SessionKeepalive(100);
    keepalive.start(client, () => true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent).toHaveLength(1);
    keepalive.stop();
  });

  it('moves to the new client of a transaction begun after a reconnect', async () => {
    const first = fakeClient();
    const second = fakeClient();
    const keepalive = new SessionKeepalive(100);
    keepalive.start(first.client, () => false);
    keepalive.start(second.client, () => true);
    await vi.advanceTimersByTimeAsync(250);
    expect(first.sent).toEqual([]);
    expect(second.sent).toEqual(['SELECT 1', 'SELECT 1']);
    keepalive.stop();
  });

  it('keeps the reason when its touch is what hears the server end the idle transaction', async () => {
    const ended = Object.assign(
      new Error('terminating connection due to idle-in-transaction timeout'),
      {
        code: '25P03',
      },
    );
    const { client } = fakeClient(() => Promise.reject(ended));
    const keepalive = new SessionKeepalive(100);
    keepalive.start(client, () => true);
    await vi.advanceTimersByTimeAsync(150);
    keepalive.stop();
    // The applier's next use says only "not queryable": explained by the server's reason.
    expect(explainIdleEnd(client, new Error('Client is not queryable'))).toBe(ended);
    expect(explainIdleEnd(client, Object.assign(new Error('x'), { code: '23505' }))).not.toBe(
      ended,
    );
  });
});

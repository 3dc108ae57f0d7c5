import type pg from 'pg';
import { noteIdleEnd } from './idle-end.js';
import { answersHeard } from './node-connection.js';

/**
 * Keeps a session from looking idle to the server while this process runs:
 * an open transaction (an applier may wait at a two-phase gate for as long as
 * a round before it takes; a migration's own code may take its time between
 * statements) or an advisory lock's session. A `SELECT 1` every `everyMs`,
 * one at a time, unless the session answered other work since the last
 * look. A frozen process sends none, so the server's idle bounds
 * (boundIdleInTransaction, boundLockSessionIdle) still end its transaction or
 * session and free the locks it holds for its successor or the application.
 */
export class SessionKeepalive {
  private timer: NodeJS.Timeout | null = null;
  private touching: pg.Client | null = null;

  constructor(private readonly everyMs: number) {}

  /** Touches `client` until `open()` turns false (checked at each tick). */
  start(client: pg.Client, open: () => boolean): void {
    if (this.timer && this.touching === client) return;
    this.stop();
    this.touching = client;
    let answered = true;
    /** The server's answers on the session when last looked at (after our own touch's). */
    let seen = answersHeard(client);
    this.timer = setInterval(() => {
      if (!open()) return this.stop();
      if (!answered) return;
      // Busy with other work since the last look: the server's idle clock restarted with its
      // answers, so a touch now would only add a round trip (at most 2 × everyMs of idle).
      const heard = answersHeard(client);
      if (heard !== seen) {
        seen = heard;
        return;
      }
      answered = false;
      const done = () => {
        answered = true;
        seen = answersHeard(client);
      };
      client.query('SELECT 1').then(done, (error: unknown) => {
        noteIdleEnd(client, error);
        done();
      });
    }, this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.touching = null;
  }
}

import type { Logger } from 'pino';
import { LockstepError } from '../ports/lockstep-error.js';
import type { MigrationNodeSession } from '../ports/migration-session.js';
import {
  compareLsn,
  decodeMigrationWork,
  type Lsn,
  MIGRATION_WORK,
  type MigrationWork,
  type PacketPart,
  type TablePattern,
} from '../protocol/index.js';
import { sleep } from '../support/sleep.js';

/** How many migrations' work an agent keeps (one round at a time holds the migrate lock). */
const KEPT = 16;
/** How often a prepare looks again whether the replica applied the barrier's packet (ms). */
const APPLIED_POLL_MS = 50;

/**
 * An agent's side of `lockstep migrate` / `exec` over the bus. It runs only
 * work the stream vouched for: the control event committed with the round's
 * barrier (a row only lockstep's role may write), seen as the agent reads the
 * bus, and only once its replica applied the stream through that barrier —
 * the migration's place in the replica's packet order. A request names the gid.
 */
export class AgentMigrations {
  private readonly works = new Map<string, { work: MigrationWork; lsn: Lsn }>();

  constructor(
    private readonly replica: string,
    private readonly session: MigrationNodeSession,
    private readonly options: {
      readonly lockTimeoutMs: number;
      /** Replicated tables the migration creates are recorded as in step. */
      readonly adoptTables: readonly TablePattern[];
      /** How long a migration prepared here is left to its `migrate` before the coordinator is asked (ms). */
      readonly patienceMs: number;
    },
    private readonly log: Logger,
  ) {}

  get patienceMs(): number {
    return this.options.patienceMs;
  }

  /** A part read from the bus: keeps any migration work it carries. */
  seen(part: PacketPart): void {
    for (const change of part.changes) {
      if (change.kind !== 'message' || change.prefix !== MIGRATION_WORK) continue;
      const work = decodeMigrationWork(change.content);
      if (!work) {
        this.log.warn(
          { replica: this.replica, version: part.header.version, event: 'migration-work-invalid' },
          'malformed migration work ignored',
        );
        continue;
      }
      this.works.set(work.gid, { work, lsn: part.header.lsn });
      if (this.works.size > KEPT) this.works.delete(this.works.keys().next().value as string);
    }
  }

  /** The commit LSN of the last packet the replica applied. */
  applied(): Promise<Lsn | null> {
    return this.session.appliedLsn();
  }

  /**
   * The replica's applied LSN once it reached `lsn`, or as it stands when the
   * vote's time ran out. `migrate` asks once the replica applied its barrier
   * message; the packet that carries it ends at the barrier's commit, a little
   * later: applying may still be on its way there.
   */
  private async appliedThrough(lsn: Lsn): Promise<Lsn | null> {
    const deadline = Date.now() + this.options.lockTimeoutMs;
    for (;;) {
      const applied = await this.session.appliedLsn();
      if ((applied !== null && compareLsn(applied, lsn) >= 0) || Date.now() >= deadline)
        return applied;
      await sleep(APPLIED_POLL_MS);
    }
  }

  /**
   * Runs the vouched work of `gid` on the replica and prepares it. Taken on
   * the first attempt: a round asks each replica once, and a replica that
   * refused gets no rollback, so a replayed request must find nothing to run.
   */
  async prepare(gid: string): Promise<void> {
    const vouched = this.works.get(gid);
    this.works.delete(gid);
    if (!vouched) {
      throw new LockstepError({
        node: this.replica,
        problem: `migration ${gid} is not in the stream this agent read, or was attempted here already: nothing runs that lockstep did not write, nor twice`,
        fix: 'run the migration again (an agent restarted after its barrier reads it anew)',
      });
    }
    const applied = await this.appliedThrough(vouched.lsn);
    if (applied === null || compareLsn(applied, vouched.lsn) < 0) {
      throw new LockstepError({
        node: this.replica,
        problem: `the replica has not applied the stream up to migration ${gid} (at ${applied ?? 'no position'}, barrier ${vouched.lsn})`,
        fix: `see lockstep status for what halts ${this.replica}, then run the migration again`,
      });
    }
    const { sql, history } = vouched.work;
    const step = async (connection: { query(text: string): Promise<unknown> }) => {
      await connection.query(sql);
    };
    await this.session.prepare({
      gid,
      marker: false,
      lockTimeoutMs: this.options.lockTimeoutMs,
      step,
      history,
      adoptTables: this.options.adoptTables,
    });
  }
}

/**
 * An error a user can act on: it names the node (and table, when there is one),
 * what is wrong, and the fix. Never carries credentials.
 */
export class LockstepError extends Error {
  /** Node the problem is on: `primary` or a replica's name. */
  readonly node: string;
  /** The setting, privilege or object at fault (e.g. `wal_level`), when there is one. */
  readonly setting: string | undefined;
  /** Schema-qualified table, when the problem is about one. */
  readonly table: string | undefined;
  /** What to do about it. */
  readonly fix: string;
  /** SQLSTATE of the underlying Postgres error, when there is one. */
  readonly sqlState: string | undefined;

  constructor(init: {
    node: string;
    problem: string;
    fix: string;
    setting?: string;
    table?: string;
    sqlState?: string;
    cause?: unknown;
  }) {
    const where = init.table ? `${init.node}, table ${init.table}` : init.node;
    super(`[${where}] ${init.problem}\n  fix: ${init.fix}`, { cause: init.cause });
    this.name = 'LockstepError';
    this.node = init.node;
    this.setting = init.setting;
    this.table = init.table;
    this.fix = init.fix;
    this.sqlState = init.sqlState;
  }
}

/**
 * This process no longer holds the coordinator lock: another process took
 * over (a newer activation epoch), so what it was about to write was refused.
 * It must stop acting and stand by; its successor finishes what it left.
 */
export class DeposedError extends Error {
  constructor(readonly epoch: number | null) {
    super(
      epoch === null
        ? 'this process holds no coordinator epoch: it may not decide rounds'
        : `this process's coordinator epoch ${epoch} is no longer current: another sidecar took over`,
    );
    this.name = 'DeposedError';
  }
}

/**
 * Why a node cannot go on, for code to act on (the prose of problem and fix
 * is for people). `retention-lost`: the stream no longer holds what the
 * replica needs next, so only a fresh copy brings it back (it is stale).
 * `stream-renumbered`: the stream's next version is a packet the replica
 * already has (its versions shifted): the replica is sound, the stream is
 * not, so it halts (not stale) for an operator to look first.
 */
export type LockstepErrorReason = 'retention-lost' | 'stream-renumbered';

/**
 * An error a user can act on: it names the node (and table, when there is one),
 * what is wrong, and the fix. Never carries credentials.
 */
export class LockstepError extends Error {
  /** Node the problem is on: `primary` or a replica's name. */
  readonly node: string;
  /** What is wrong, without the node and fix around it (for `--json`). */
  readonly problem: string;
  /** The setting, privilege or object at fault (e.g. `wal_level`), when there is one. */
  readonly setting: string | undefined;
  /** Schema-qualified table, when the problem is about one. */
  readonly table: string | undefined;
  /** What to do about it. */
  readonly fix: string;
  /** SQLSTATE of the underlying Postgres error, when there is one. */
  readonly sqlState: string | undefined;
  /** Machine-readable cause, when code decides by it (never by matching `fix`). */
  readonly reason: LockstepErrorReason | undefined;

  constructor(init: {
    node: string;
    problem: string;
    fix: string;
    setting?: string;
    table?: string;
    sqlState?: string;
    reason?: LockstepErrorReason;
    cause?: unknown;
  }) {
    const where = init.table ? `${init.node}, table ${init.table}` : init.node;
    super(`[${where}] ${init.problem}\n  fix: ${init.fix}`, { cause: init.cause });
    this.name = 'LockstepError';
    this.node = init.node;
    this.problem = init.problem;
    this.setting = init.setting;
    this.table = init.table;
    this.fix = init.fix;
    this.sqlState = init.sqlState;
    this.reason = init.reason;
  }
}

/** Socket-level failures: the node is down, unknown or does not answer. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Whether an error means a node could not be reached or refused the login
 * (`unreachable()` in node-connection.ts marks these with the setting
 * `connection`), looking through wrapping errors' causes.
 */
export function isConnectionFailure(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if (e instanceof LockstepError && e.setting === 'connection') return true;
    const { code = (e as { sqlState?: unknown }).sqlState } = e as { code?: unknown };
    // 08: connection exception; 28: invalid authorization; 57P03: cannot connect now.
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || /^(08|28)|^57P03$/.test(code)))
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
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

/**
 * COMMIT PREPARED found `gid` no longer prepared on `node`, and the node's own
 * records show it did not commit there: it was rolled back outside lockstep
 * (by hand, a restored backup). Retrying cannot help; the node lacks what the
 * round committed elsewhere.
 */
export class NotLandedError extends LockstepError {
  constructor(
    node: string,
    readonly gid: string,
    readonly kind: 'stream' | 'migration',
  ) {
    super({
      node,
      problem: `gid ${gid} is neither prepared nor committed here (rolled back outside lockstep?): the round committed on the other nodes`,
      fix:
        kind === 'stream'
          ? `${node} applies the round's packets again from its own position (lockstep status shows it catching up); should it stay behind, copy it anew (lockstep attach --resync ${node})`
          : `run the migration's statements on ${node} by hand, or copy it anew (lockstep attach --resync ${node})`,
    });
    this.name = 'NotLandedError';
  }
}

import { LockstepError } from '../ports/lockstep-error.js';
import { compareLsn, type Lsn } from '../protocol/index.js';

/** Anything with `pg`'s `query(text, values)`: a `pg.Pool`, a `pg.Client` or a pooled client. */
export interface Queryable {
  // biome-ignore lint/suspicious/noExplicitAny: pg's rows are any
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/** A replica to wait for, by the name reports use. */
export interface NamedReplica {
  readonly name: string;
  readonly db: Queryable;
}

/** What to wait for: a primary LSN, or a stream version (`status --json`'s `version`). */
export type WaitTarget = { readonly lsn: Lsn } | { readonly version: number };

/** Where a replica is (`version` and `lsn` as `status --json` has them), and whether it reached the target. */
export interface ReplicaPosition {
  name: string;
  version: number | null;
  lsn: Lsn | null;
  reached: boolean;
}

/** How long and how to wait. */
export interface PositionWaitOptions {
  readonly timeoutMs: number;
  /** lockstep's stream (its `slot` setting). */
  readonly stream: string;
  /** Called once when a replica is not there at the first look (an LSN target's barrier). */
  readonly nudge?: () => Promise<void>;
  readonly signal?: AbortSignal;
}

/** The first poll comes soon after a miss, later ones back off to this. */
const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 250;

/** Reads a replica's applied position: the `(version, lsn)` it stores with the data it applies. */
async function readPosition(
  replica: NamedReplica,
  stream: string,
): Promise<{ version: number; lsn: Lsn }> {
  const { rows } = await replica.db
    .query(
      'SELECT version::text AS version, lsn::text AS lsn FROM lockstep.applied WHERE stream = $1',
      [stream],
    )
    .catch((error: { code?: string; message?: string }) => {
      if (error.code === '42501')
        throw new LockstepError({
          node: replica.name,
          setting: 'privileges',
          sqlState: error.code,
          problem: `cannot read lockstep's position on the replica: ${error.message}`,
          fix: 'as a superuser on the replica: GRANT USAGE ON SCHEMA lockstep TO <role>; GRANT SELECT ON lockstep.applied TO <role>',
          cause: error,
        });
      if (error.code === '42P01' || error.code === '3F000') return { rows: [] };
      throw error;
    });
  const row = rows[0] as { version: string; lsn: Lsn } | undefined;
  if (!row)
    throw new LockstepError({
      node: replica.name,
      problem: `not attached: the replica has no position in stream "${stream}"`,
      fix: 'run lockstep attach (and lockstep run), or name the stream lockstep uses (its slot setting)',
    });
  return { version: Number(row.version), lsn: row.lsn };
}

/** Whether a position has the target: an LSN is reached by a commit at or after it. */
function hasReached(position: { version: number; lsn: Lsn }, target: WaitTarget): boolean {
  return 'lsn' in target
    ? compareLsn(position.lsn, target.lsn) >= 0
    : position.version >= target.version;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/** Resolves at `deadline` (or at once past it); `cancel` clears its timer. */
function untilDeadline(deadline: number): { passed: Promise<'deadline'>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const passed = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), Math.max(0, deadline - Date.now()));
  });
  return { passed, cancel: () => clearTimeout(timer) };
}

/** `work`, or 'deadline' if it has not settled by then (a replica that stopped answering). */
async function byDeadline<T>(work: Promise<T>, deadline: number): Promise<T | 'deadline'> {
  const timer = untilDeadline(deadline);
  try {
    return await Promise.race([work, timer.passed]);
  } finally {
    timer.cancel();
  }
}

/**
 * Polls every replica's position until each has reached `target` or the
 * timeout passes (no busy loop: the polls back off to every 250 ms). Returns
 * every replica's last known position; `reached` false for those behind.
 * A read (or the nudge) still unanswered at the timeout is not waited for:
 * a frozen replica is reported behind at its last known position.
 */
export async function waitForPositions(
  replicas: readonly NamedReplica[],
  target: WaitTarget,
  options: PositionWaitOptions,
): Promise<{ reached: boolean; replicas: ReplicaPosition[] }> {
  const deadline = Date.now() + options.timeoutMs;
  const positions = replicas.map(
    (r): ReplicaPosition => ({ name: r.name, version: null, lsn: null, reached: false }),
  );
  let timedOut = false;
  const behind = () => ({ reached: false, replicas: positions.map((p) => ({ ...p })) });
  let delay = FIRST_POLL_MS;
  for (let round = 0; ; round++) {
    const reads = Promise.all(
      replicas.map(async (replica, i) => {
        const known = positions[i] as ReplicaPosition;
        if (known.reached) return;
        const position = await readPosition(replica, options.stream);
        // A read answered after the timeout changes nothing already reported.
        if (!timedOut) Object.assign(known, position, { reached: hasReached(position, target) });
      }),
    );
    if ((await byDeadline(reads, deadline)) === 'deadline') {
      timedOut = true;
      reads.catch(() => undefined);
      return behind();
    }
    const reached = positions.every((p) => p.reached);
    const left = deadline - Date.now();
    if (reached || left <= 0) return { reached, replicas: positions };
    if (round === 0 && options.nudge) {
      const nudged = options.nudge();
      if ((await byDeadline(nudged, deadline)) === 'deadline') {
        nudged.catch(() => undefined);
        return behind();
      }
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), options.signal);
    delay = Math.min(MAX_POLL_MS, delay * 2);
  }
}

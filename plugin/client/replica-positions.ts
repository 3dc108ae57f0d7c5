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
  /** How long past the timeout the final read may answer (default 1 000 ms). */
  readonly finalReadMs?: number;
}

/** How long after the timeout the final read may still answer, by default. */
const FINAL_READ_MS = 1_000;

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

/** The longest delay setTimeout takes: a longer one fires at once (Node clamps it to 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves at `deadline` (or at once past it); `cancel` clears its timer. */
function untilDeadline(deadline: number): { passed: Promise<'deadline'>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const passed = new Promise<'deadline'>((resolve) => {
    // A deadline beyond the longest timer is reached in steps, not at once.
    const arm = () => {
      const left = Math.max(0, deadline - Date.now());
      const step = Math.min(left, MAX_TIMER_MS);
      timer = setTimeout(() => (step < left ? arm() : resolve('deadline')), step);
    };
    arm();
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

/** What a wait found: whether every replica reached the target, where each is, who did not answer. */
export interface PositionWaitResult {
  reached: boolean;
  replicas: ReplicaPosition[];
  /** Replicas whose last read got no answer by the timeout and its final read's grace (in order). */
  unanswered: string[];
}

/**
 * Polls every replica's position until each has reached `target` or the
 * timeout passes (no busy loop: the polls back off to every 250 ms). Returns
 * every replica's last position read; `reached` false for those behind.
 * The last look is always a read: one running at the timeout, or one started
 * once it passed, may answer up to `finalReadMs` later, so a replica that is
 * there is never called behind because it was not looked at in time (a
 * timeout shorter than a round trip, a deadline between two polls). A read
 * still unanswered then is not waited for: that replica is `unanswered` (a
 * frozen host), at its last position read (null: none was).
 */
export async function waitForPositions(
  replicas: readonly NamedReplica[],
  target: WaitTarget,
  options: PositionWaitOptions,
): Promise<PositionWaitResult> {
  const deadline = Date.now() + options.timeoutMs;
  const lastAnswer = deadline + (options.finalReadMs ?? FINAL_READ_MS);
  const positions = replicas.map(
    (r): ReplicaPosition => ({ name: r.name, version: null, lsn: null, reached: false }),
  );
  let delay = FIRST_POLL_MS;
  for (let round = 0; ; round++) {
    const read = readRound(replicas, positions, target, options.stream);
    if ((await byDeadline(read.done, lastAnswer)) === 'deadline') {
      read.done.catch(() => undefined);
      return { reached: false, replicas: read.close(), unanswered: read.pending() };
    }
    const reached = positions.every((p) => p.reached);
    if (reached || Date.now() >= deadline) return { reached, replicas: positions, unanswered: [] };
    if (round === 0 && options.nudge) {
      const nudged = options.nudge();
      // A nudge unanswered at the timeout (a frozen primary) is left: the final read still comes.
      if ((await byDeadline(nudged, deadline)) === 'deadline') nudged.catch(() => undefined);
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), options.signal);
    delay = Math.min(MAX_POLL_MS, delay * 2);
  }
}

/** One read of every replica not there yet, into `positions` (nothing once closed). */
function readRound(
  replicas: readonly NamedReplica[],
  positions: ReplicaPosition[],
  target: WaitTarget,
  stream: string,
) {
  const pending = new Set<number>();
  let closed = false;
  const done = Promise.all(
    replicas.map(async (replica, i) => {
      const known = positions[i] as ReplicaPosition;
      if (known.reached) return;
      pending.add(i);
      const position = await readPosition(replica, stream);
      // A read answered after the wait ended changes nothing already reported.
      if (closed) return;
      Object.assign(known, position, { reached: hasReached(position, target) });
      pending.delete(i);
    }),
  );
  return {
    done,
    /** Ends the round: the positions as they are now, copied. */
    close: () => {
      closed = true;
      return positions.map((p) => ({ ...p }));
    },
    pending: () => [...pending].sort((a, b) => a - b).map((i) => replicas[i]?.name ?? ''),
  };
}

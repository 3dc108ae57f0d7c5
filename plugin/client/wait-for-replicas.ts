import { BARRIER_MESSAGE, type Lsn, toLsn } from '../protocol/index.js';
import {
  type NamedReplica,
  type Queryable,
  type ReplicaPosition,
  waitForPositions,
} from './replica-positions.js';

/** One replica, several, or several by name (the names appear in errors). */
export type Replicas = Queryable | readonly Queryable[] | Readonly<Record<string, Queryable>>;

/** Options of {@link waitForReplicas}. */
export interface WaitForReplicasOptions {
  /** Give up after this long with {@link ReplicasBehind}. Default 10 000. */
  readonly timeoutMs?: number;
  /**
   * The primary the LSN was read on. A replica's position moves only when a
   * replicated transaction is applied; when the primary has none after the
   * awaited LSN (it is idle), a tiny barrier transaction committed there gives
   * it one. Without `primary`, the wait ends only once some later replicated
   * transaction has been applied.
   */
  readonly primary?: Queryable;
  /** lockstep's stream: its `slot` setting. Default `lockstep`. */
  readonly stream?: string;
  /** Aborts the wait (rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/**
 * The replicas did not all apply the awaited LSN in time; `replicas` says
 * where each is (its last position read), `unanswered` which of them did not
 * answer the final read (a frozen host): those are not called behind.
 */
export class ReplicasBehind extends Error {
  constructor(
    readonly lsn: Lsn,
    readonly replicas: readonly ReplicaPosition[],
    readonly unanswered: readonly string[] = [],
  ) {
    const silent = new Set(unanswered);
    const at = (r: ReplicaPosition) => `${r.name} at ${r.lsn ?? 'an unknown position'}`;
    const behind = replicas.filter((r) => !r.reached && !silent.has(r.name)).map(at);
    const mute = replicas
      .filter((r) => silent.has(r.name))
      .map((r) => (r.lsn === null ? r.name : `${at(r)} when last read`));
    const parts = [
      behind.length > 0 ? `still behind: ${behind.join(', ')}` : '',
      mute.length > 0 ? `did not answer: ${mute.join(', ')}` : '',
    ];
    super(`replicas not all at ${lsn} in time; ${parts.filter(Boolean).join('; ')}`);
    this.name = 'ReplicasBehind';
  }
}

/** Names replicas: a record's keys, else `replica1`, `replica2`, … in order. */
function named(replicas: Replicas): NamedReplica[] {
  const isQueryable = (x: unknown): x is Queryable =>
    typeof (x as Queryable | null)?.query === 'function';
  if (isQueryable(replicas)) return [{ name: 'replica1', db: replicas }];
  if (Array.isArray(replicas))
    return (replicas as readonly Queryable[]).map((db, i) => ({ name: `replica${i + 1}`, db }));
  return Object.entries(replicas as Record<string, Queryable>).map(([name, db]) => ({ name, db }));
}

/**
 * Commits a lockstep barrier on the primary: a transaction of its own whose
 * commit comes after every LSN read before it, so a replica that applied it
 * has everything committed before that LSN.
 */
export function barrierOn(primary: Queryable): () => Promise<void> {
  return async () => {
    await primary.query('SELECT pg_logical_emit_message(true, $1, $2)', [BARRIER_MESSAGE, 'wait']);
  };
}

/**
 * Read-your-writes: resolves once every replica has applied everything the
 * primary committed before `lsn` — typically `SELECT pg_current_wal_insert_lsn()`
 * run on the primary right after the application's commit. A replica stores
 * the commit LSN of the last transaction it applied; the stream is applied in
 * commit order, so a stored LSN at or past `lsn` means every transaction that
 * committed before `lsn` (the application's own among them) is there. Pass
 * `primary` so an idle primary does not leave the wait without anything to
 * reach (see {@link WaitForReplicasOptions.primary}). Rejects with
 * {@link ReplicasBehind} after `timeoutMs`.
 */
export async function waitForReplicas(
  replicas: Replicas,
  lsn: string,
  options: WaitForReplicasOptions = {},
): Promise<ReplicaPosition[]> {
  let target: Lsn;
  try {
    target = toLsn(lsn);
  } catch {
    throw new TypeError(`not an LSN: ${JSON.stringify(lsn)} (expected e.g. 0/16B3748)`);
  }
  const result = await waitForPositions(
    named(replicas),
    { lsn: target },
    {
      timeoutMs: options.timeoutMs ?? 10_000,
      stream: options.stream ?? 'lockstep',
      nudge: options.primary ? barrierOn(options.primary) : undefined,
      signal: options.signal,
    },
  );
  if (!result.reached) throw new ReplicasBehind(target, result.replicas, result.unanswered);
  return result.replicas;
}

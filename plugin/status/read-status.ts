import type pg from 'pg';
import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import { type JoinHold, readJoinHolds } from '../../adapters/postgres/control/join-holds.js';
import { listLockstepGids } from '../../adapters/postgres/control/prepared-transactions.js';
import { streamLockHeld } from '../../adapters/postgres/control/stream-lock.js';
import { readSlotHealth } from '../../adapters/postgres/source/replication-slot.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { TwoPhaseStatus } from '../coordinator/two-phase-coordinator.js';
import { isConnectionFailure, type LockstepError } from '../ports/lockstep-error.js';
import { type SlotHealth, slotLoss } from '../ports/slot-health.js';
import { type Lsn, lsnDistance } from '../protocol/index.js';

/** One replica in `status --json`. */
export interface ReplicaStatus {
  name: string;
  version: number | null;
  lsn: Lsn | null;
  lagVersions: number | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  state: string;
  error: string | null;
  errorAt: string | null;
  /** Whether status could connect to the replica just now. */
  reachable: boolean;
}

/** A lockstep transaction still prepared on some node. */
export interface InDoubtTransaction {
  node: string;
  gid: string;
  preparedAt: string;
  ageSeconds: number;
}

/** `status --json` (DESIGN.md: primary.version, primary.lsn, replicas[], inDoubt[]). */
export interface LockstepStatus {
  primary: {
    version: number | null;
    lsn: Lsn | null;
    walLsn: Lsn | null;
    slotRetainedBytes: number | null;
    error: string | null;
    /** Whether status could connect to the primary just now. */
    reachable: boolean;
  };
  replicas: ReplicaStatus[];
  inDoubt: InDoubtTransaction[];
  /** Two-phase rounds as the sidecar last reported them (null before it ran). */
  twoPhase: TwoPhaseStatus | null;
  /** Replication is paused (`lockstep pause`): the stream stops until `lockstep resume`. */
  paused: boolean;
  /** Since when it is paused (null while it runs). */
  pausedSince: string | null;
  /** The active sidecar (host:pid) as last recorded, since when, and whether one holds the coordinator lock now. */
  sidecar: { active: string | null; since: string | null; running: boolean };
  /** The replication slot; `lost` with its reason and fix when it can never stream again. */
  slot: (SlotHealth & { lost: boolean; reason: string | null; fix: string | null }) | null;
  /**
   * Where attach holds the slot for replicas it copies to join; `holderAlive`
   * false: that attach was killed, and its hold keeps WAL until the next
   * attach of the replica replaces it or detach drops it.
   */
  joinHolds: JoinHold[];
}

/** Seconds between the stream head's commit and the replica's last applied commit (0 when caught up). */
function lagSecondsBehind(
  lagVersions: number | null,
  head: Date | null,
  applied: Date | null,
): number | null {
  if (lagVersions === 0) return 0;
  if (!head || !applied) return null;
  return Math.max(0, (head.getTime() - applied.getTime()) / 1000);
}

/** The stream's join holds; none where the control schema predates them (no attach could write one). */
async function holdsOn(primary: pg.ClientBase, stream: string): Promise<JoinHold[]> {
  return readJoinHolds(primary, stream).catch((error: { code?: string }) => {
    if (error.code === '42P01') return [];
    throw error;
  });
}

async function inDoubtOn(node: string, client: pg.ClientBase): Promise<InDoubtTransaction[]> {
  return (await listLockstepGids(client)).map((g) => ({
    node,
    ...g,
    ageSeconds: Math.round(g.ageSeconds),
  }));
}

/**
 * Reads status from the databases themselves, so it works whether or not a
 * sidecar runs: each replica's applied position, the sidecar's last notes
 * (state, error) and the stream head from the primary, prepared lockstep
 * transactions everywhere.
 */
export async function readStatus(config: LockstepConfig): Promise<LockstepStatus> {
  const stream = config.slot;
  const status: LockstepStatus = {
    primary: {
      version: null,
      lsn: null,
      walLsn: null,
      slotRetainedBytes: null,
      error: null,
      reachable: true,
    },
    replicas: [],
    inDoubt: [],
    twoPhase: null,
    paused: false,
    pausedSince: null,
    sidecar: { active: null, since: null, running: false },
    slot: null,
    joinHolds: [],
  };
  const notes = new Map<string, { state: string; error: string | null; error_at: Date | null }>();
  let headCommit: Date | null = null;
  try {
    const primary = await connectNode('primary', config.primary);
    try {
      // paused_at through to_jsonb: a control schema from before pause existed (no sidecar has
      // migrated it yet) reads as not paused instead of failing the whole query.
      const head = await primary
        .query<{
          version: string;
          lsn: Lsn | null;
          commit_time: Date | null;
          wal: Lsn;
          two_phase: TwoPhaseStatus | null;
          active_sidecar: string | null;
          active_since: Date | null;
          paused_at: Date | null;
        }>(
          `SELECT s.version::text, s.lsn::text, s.commit_time, s.two_phase, s.active_sidecar, s.active_since,
                (to_jsonb(s) ->> 'paused_at')::timestamptz AS paused_at,
                pg_current_wal_lsn()::text AS wal
           FROM lockstep.streams s WHERE s.stream = $1`,
          [stream],
        )
        .catch(() => ({ rows: [] }));
      const row = head.rows[0];
      if (row) {
        status.primary = {
          version: Number(row.version),
          lsn: row.lsn,
          walLsn: row.wal,
          // From the slot read below: one reading of pg_replication_slots.
          slotRetainedBytes: null,
          error: null,
          reachable: true,
        };
        headCommit = row.commit_time;
        status.twoPhase = row.two_phase;
        status.paused = row.paused_at !== null;
        status.pausedSince = row.paused_at?.toISOString() ?? null;
        const running = await streamLockHeld(primary, stream);
        status.sidecar = {
          active: running ? row.active_sidecar : null,
          since: running ? (row.active_since?.toISOString() ?? null) : null,
          running,
        };
        const replicaNotes = await primary.query<{
          replica: string;
          state: string;
          error: string | null;
          error_at: Date | null;
        }>(
          'SELECT replica, state, error, error_at FROM lockstep.replica_status WHERE stream = $1',
          [stream],
        );
        for (const n of replicaNotes.rows) notes.set(n.replica, n);
        const slot = await readSlotHealth(primary, stream);
        status.primary.slotRetainedBytes = slot?.retainedBytes ?? null;
        const loss = slot ? slotLoss(slot) : null;
        status.slot = slot && {
          ...slot,
          lost: loss !== null,
          reason: loss?.reason ?? null,
          fix: loss?.fix ?? null,
        };
        status.joinHolds = await holdsOn(primary, stream);
      } else {
        status.primary.error = `not attached: no stream "${stream}" on the primary (run lockstep attach)`;
      }
      status.inDoubt.push(...(await inDoubtOn('primary', primary)));
    } finally {
      await primary.end();
    }
  } catch (error) {
    status.primary.error = (error as LockstepError).message;
    status.primary.reachable = !isConnectionFailure(error);
  }
  status.replicas = await readReplicas(config, status, notes, headCommit);
  // Without its slot no replica can catch up, whatever it last did: each needs a fresh copy.
  if (status.slot?.lost)
    status.replicas = status.replicas.map((r) => ({
      ...r,
      state: 'stale',
      error: `${status.slot?.reason}; fix: ${status.slot?.fix}`,
    }));
  return status;
}

/** Each replica's position and lag, read from the replica itself, with the sidecar's notes. */
async function readReplicas(
  config: LockstepConfig,
  status: LockstepStatus,
  notes: Map<string, { state: string; error: string | null; error_at: Date | null }>,
  headCommit: Date | null,
): Promise<ReplicaStatus[]> {
  const stream = config.slot;

  return Promise.all(
    config.replicas.map(async (replica): Promise<ReplicaStatus> => {
      const note = notes.get(replica.name);
      const base: ReplicaStatus = {
        name: replica.name,
        version: null,
        lsn: null,
        lagVersions: null,
        lagBytes: null,
        lagSeconds: null,
        state: note?.state ?? 'unknown',
        error: note?.error ?? null,
        errorAt: note?.error_at?.toISOString() ?? null,
        reachable: true,
      };
      let client: pg.Client;
      try {
        client = await connectNode(replica.name, replica.url);
      } catch (error) {
        // Unreachable now; a replica the sidecar marked stale, resyncing or unresponsive stays so.
        const kept = ['stale', 'resyncing', 'unresponsive'];
        const state = note && kept.includes(note.state) ? note.state : 'halted';
        return { ...base, state, error: (error as LockstepError).message, reachable: false };
      }
      try {
        const { rows } = await client
          .query<{ version: string; lsn: Lsn; commit_time: Date | null }>(
            'SELECT version::text, lsn::text, commit_time FROM lockstep.applied WHERE stream = $1',
            [stream],
          )
          .catch(() => ({ rows: [] as { version: string; lsn: Lsn; commit_time: Date | null }[] }));
        status.inDoubt.push(...(await inDoubtOn(replica.name, client)));
        const row = rows[0];
        if (!row) return { ...base, state: 'not-attached' };
        const version = Number(row.version);
        const headVersion = status.primary.version;
        // Paused, the recorded head is old: lag in versions and seconds is unknown (lagBytes still tells).
        const lagVersions =
          headVersion === null || status.paused ? null : Math.max(0, headVersion - version);
        return {
          ...base,
          version,
          lsn: row.lsn,
          lagVersions,
          lagBytes: status.primary.walLsn
            ? Math.max(0, lsnDistance(row.lsn, status.primary.walLsn))
            : null,
          lagSeconds: status.paused
            ? null
            : lagSecondsBehind(lagVersions, headCommit, row.commit_time),
        };
      } finally {
        await client.end();
      }
    }),
  );
}

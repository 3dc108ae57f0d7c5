import { isUnanswered } from '../attach/node-step.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { TwoPhaseStatus } from '../coordinator/two-phase-coordinator.js';
import type { JoinHold } from '../ports/join-holds.js';
import type {
  LockstepCluster,
  NodeSession,
  PreparedGidEntry,
  PrimarySession,
} from '../ports/lockstep-cluster.js';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import type { ReplicaNote } from '../ports/replica-status-store.js';
import { type SlotHealth, slotLoss } from '../ports/slot-health.js';
import { type Lsn, lsnDistance } from '../protocol/index.js';
import type { AppliedMigration } from '../protocol/migration-summary.js';
import { type BusStatusSource, readBusReplicas } from './bus-replicas.js';
import { judgeMigrations, withGap } from './migration-gaps.js';
import {
  failedReadError,
  neverAttached,
  readReplica,
  statusSession,
  unansweredError,
} from './replica-reading.js';

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
  /** Whether status could connect to the replica just now (with `bus`: whether its agent reports). */
  reachable: boolean;
  /** With `bus`: the replica is as its agent reported it to the bus, not read from it. */
  source?: 'bus';
  /** With `bus`: the agent that reported, and its last heartbeat (null: none reports). */
  agent?: { host: string; pid: number; heartbeatAt: string; heartbeats: number } | null;
  /**
   * Its migration history is not the primary's, past any round still in
   * phase two there (`error` names the migrations and the fix; exit 1).
   */
  migrationsDiffer: boolean;
  /** The primary's migrations it lacks (as far as they can be told). */
  missingMigrations: string[];
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
  /** With `bus`: the agents' bucket the replicas were read from, and whether it could be read. */
  bus?: { bucket: string; reachable: boolean; error: string | null };
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
async function holdsOn(primary: PrimarySession, stream: string): Promise<JoinHold[]> {
  return primary.joinHolds.read(stream).catch((error: { code?: string }) => {
    if (error.code === '42P01') return [];
    throw error;
  });
}

async function inDoubtOn(node: string, session: NodeSession): Promise<InDoubtTransaction[]> {
  return inDoubtOf(node, await session.preparedGids());
}

function inDoubtOf(node: string, gids: readonly PreparedGidEntry[]): InDoubtTransaction[] {
  return gids.map((g) => ({ node, ...g, ageSeconds: Math.round(g.ageSeconds) }));
}

/** What the primary tells about the stream, before the replicas are read. */
interface PrimaryReading {
  /** The sidecar's last note on each replica. */
  readonly notes: Map<string, ReplicaNote>;
  /** The commit time of the stream's head. */
  readonly headCommit: Date | null;
  /** The primary's migration history (null: not read), and when status began reading it. */
  readonly migrations: readonly AppliedMigration[] | null;
  readonly migrationsReadAt?: Date;
}

function emptyStatus(): LockstepStatus {
  return {
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
}

/**
 * Reads status from the databases themselves, so it works whether or not a
 * sidecar runs: each replica's applied position, the sidecar's last notes
 * (state, error) and the stream head from the primary, prepared lockstep
 * transactions everywhere.
 */
export async function readStatus(
  cluster: LockstepCluster,
  config: LockstepConfig,
  bus?: BusStatusSource,
): Promise<LockstepStatus> {
  const status = emptyStatus();
  let reading: PrimaryReading = { notes: new Map(), headCommit: null, migrations: null };
  try {
    // Bounded: a primary that stops answering is reported, not waited on for ever.
    const primary = await cluster.primary(config.primary, statusSession(config));
    try {
      reading = await readPrimary(primary, config.slot, status);
      status.inDoubt.push(...(await inDoubtOn('primary', primary)));
    } finally {
      await primary.close();
    }
  } catch (error) {
    const unanswered = isUnanswered(error);
    status.primary.error = unanswered
      ? unansweredError('primary', config.applyTimeoutMs)
      : failedReadError('primary', error);
    status.primary.reachable = !unanswered && !isConnectionFailure(error);
  }
  const names = config.replicas.map((r) => r.name);
  status.replicas = bus
    ? await readBusReplicas(bus, names, status, {
        stream: config.slot,
        history: reading.migrations,
        preparedGids: primaryGids(status),
        readAt: reading.migrationsReadAt ?? new Date(),
      })
    : await readReplicas(cluster, config, status, reading);
  // Without its slot no replica can catch up, whatever it last did: each needs a fresh copy.
  if (status.slot?.lost)
    status.replicas = status.replicas.map((r) => ({
      ...r,
      state: 'stale',
      error: `${status.slot?.reason}; fix: ${status.slot?.fix}`,
    }));
  return status;
}

/** The stream head, the sidecar, the slot and the join holds, into `status`; the replicas' notes. */
async function readPrimary(
  primary: PrimarySession,
  stream: string,
  status: LockstepStatus,
): Promise<PrimaryReading> {
  const notes = new Map<string, ReplicaNote>();
  const head = await primary.streams.head(stream).catch((error: unknown) => {
    // Only a missing control schema is "not attached": a read that failed (no answer,
    // a lock timeout) is reported by the caller as it is.
    if (neverAttached(error)) return undefined;
    throw error;
  });
  if (!head) {
    status.primary.error = `not attached: no stream "${stream}" on the primary (run lockstep attach)`;
    return { notes, headCommit: null, migrations: null };
  }
  status.primary = {
    version: head.version,
    lsn: head.lsn,
    walLsn: head.walLsn,
    // From the slot read below: one reading of pg_replication_slots.
    slotRetainedBytes: null,
    error: null,
    reachable: true,
  };
  status.twoPhase = head.twoPhase;
  status.paused = head.pausedAt !== null;
  status.pausedSince = head.pausedAt?.toISOString() ?? null;
  const running = await primary.streamLockHeld(stream);
  status.sidecar = {
    active: running ? head.activeSidecar : null,
    since: running ? (head.activeSince?.toISOString() ?? null) : null,
    running,
  };
  for (const n of await primary.replicaStatus.notes(stream)) notes.set(n.replica, n);
  const slot = await primary.slots.health(stream);
  status.primary.slotRetainedBytes = slot?.retainedBytes ?? null;
  const loss = slot ? slotLoss(slot) : null;
  status.slot = slot && {
    ...slot,
    lost: loss !== null,
    reason: loss?.reason ?? null,
    fix: loss?.fix ?? null,
  };
  status.joinHolds = await holdsOn(primary, stream);
  const migrationsReadAt = new Date();
  const { migrations } = await primary.migrationReading(stream);
  return { notes, headCommit: head.commitTime, migrations, migrationsReadAt };
}

/** Each replica's position and lag, read from the replica itself, with the sidecar's notes. */
async function readReplicas(
  cluster: LockstepCluster,
  config: LockstepConfig,
  status: LockstepStatus,
  { notes, headCommit, migrations }: PrimaryReading,
): Promise<ReplicaStatus[]> {
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
        errorAt: note?.errorAt?.toISOString() ?? null,
        reachable: true,
        migrationsDiffer: false,
        missingMigrations: [],
      };
      const read = await readReplica(cluster, config, replica, note);
      if ('unreachable' in read) return { ...base, ...read.unreachable, reachable: false };
      if ('failed' in read) return { ...base, error: read.failed };
      status.inDoubt.push(...inDoubtOf(replica.name, read.prepared));
      if (!read.row) return { ...base, state: 'not-attached' };
      const gap = judgeMigrations(
        replica.name,
        config.slot,
        migrations,
        {
          names: read.migrations.migrations.map((m) => m.name),
          copiedAt: read.migrations.copiedAt,
        },
        [...primaryGids(status), ...read.prepared.map((p) => p.gid)],
      );
      return withGap({ ...base, ...replicaLag(status, read.row, headCommit) }, gap);
    }),
  );
}

/**
 * The gids prepared on the primary when status read it: a migration there is
 * in flight too (a replica may have committed its part before the primary).
 */
export const primaryGids = (status: LockstepStatus) =>
  status.inDoubt.filter((t) => t.node === 'primary').map((t) => t.gid);

/** A replica's position and how far behind the stream it is. */
function replicaLag(
  status: LockstepStatus,
  row: { version: number; lsn: Lsn; commitTime: Date | null },
  headCommit: Date | null,
): Pick<ReplicaStatus, 'version' | 'lsn' | 'lagVersions' | 'lagBytes' | 'lagSeconds'> {
  const headVersion = status.primary.version;
  // Paused, the recorded head is old: lag in versions and seconds is unknown (lagBytes still tells).
  const lagVersions =
    headVersion === null || status.paused ? null : Math.max(0, headVersion - row.version);
  return {
    version: row.version,
    lsn: row.lsn,
    lagVersions,
    lagBytes: status.primary.walLsn
      ? Math.max(0, lsnDistance(row.lsn, status.primary.walLsn))
      : null,
    lagSeconds: status.paused ? null : lagSecondsBehind(lagVersions, headCommit, row.commitTime),
  };
}

import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { SidecarSnapshot } from './sidecar.js';

/** Replica states, each exported as its own 0/1 series (a Prometheus state set). */
const STATES = [
  'starting',
  'streaming',
  'catching-up',
  'paused',
  'halted',
  'unresponsive',
  'stale',
  'resyncing',
  'not-attached',
];

/** `pg_replication_slots.wal_status` values. */
const WAL_STATUSES = ['reserved', 'extended', 'unreserved', 'lost'];

/** What per-replica metrics read: the sidecar's snapshot, or an agent's of its one replica. */
export type ReplicaSet = Pick<SidecarSnapshot, 'replicas'>;

/** Registers metrics whose values are read from the scrape's snapshot. */
export interface MetricKit<S extends ReplicaSet = SidecarSnapshot> {
  readonly registry: Registry;
  /** The snapshot of this scrape (taken once, shared by every metric). */
  take(): S;
  /** A gauge per replica. */
  perReplica(
    name: string,
    help: string,
    value: (r: SidecarSnapshot['replicas'][number]) => number | null,
  ): void;
  /** A counter fed from running totals: it advances by what each total grew since the last scrape. */
  total(
    name: string,
    help: string,
    label: string,
    read: (s: S) => ReadonlyArray<readonly [string, number]>,
  ): void;
  /** A gauge with no label; absent from the scrape while `value` is null (unknown). */
  single(name: string, help: string, value: (s: S) => number | null): void;
}

/**
 * The sidecar's Prometheus metrics, read from a fresh snapshot at every scrape
 * (nothing is counted twice: counters advance by what changed since the last
 * scrape). `perReplica` registers the per-replica series (a bus publisher
 * has only some, from elsewhere).
 */
export function sidecarMetrics(
  snapshot: () => SidecarSnapshot,
  perReplica: (kit: MetricKit) => void = replicaMetrics,
): Registry {
  const registry = new Registry();
  // The process's own figures (resident memory, heap, GC pauses, event-loop lag), as operators expect them.
  collectDefaultMetrics({ register: registry });
  const kit = metricKit(registry, snapshot);
  perReplica(kit);
  streamMetrics(kit);
  twoPhaseMetrics(kit);
  return registry;
}

export function metricKit<S extends ReplicaSet>(
  registry: Registry,
  snapshot: () => S,
): MetricKit<S> {
  let current: S | null = null;
  // One snapshot per scrape, shared by every metric's collect().
  const take = () => {
    current ??= snapshot();
    queueMicrotask(() => {
      current = null;
    });
    return current;
  };
  return {
    registry,
    take,
    perReplica: (name, help, value) =>
      new Gauge({
        name,
        help,
        labelNames: ['replica'],
        registers: [registry],
        collect() {
          this.reset();
          for (const r of take().replicas) {
            const v = value(r);
            if (v !== null) this.set({ replica: r.name }, v);
          }
        },
      }),
    total: (name, help, label, read) => {
      const seen = new Map<string, number>();
      new Counter({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          const now = read(take());
          for (const [key, value] of now) {
            const before = seen.get(key) ?? 0;
            this.inc({ [label]: key }, Math.max(0, value - before));
            seen.set(key, Math.max(value, before));
          }
          // A replica removed from the configuration: its series ends.
          const present = new Set(now.map(([key]) => key));
          for (const key of seen.keys())
            if (!present.has(key)) {
              this.remove({ [label]: key });
              seen.delete(key);
            }
        },
      });
    },
    single: (name, help, value) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          const v = value(take());
          this.reset();
          // reset() leaves a label-less gauge at 0: an unknown value is removed, so it is absent.
          if (v === null) this.remove();
          else this.set(v);
        },
      }),
  };
}

/** Per replica: the version held and how far behind (also what a bus publisher exports). */
export function replicaLagMetrics({ perReplica }: MetricKit<ReplicaSet>): void {
  perReplica('lockstep_replica_version', 'Version the replica durably holds', (r) => r.version);
  perReplica(
    'lockstep_replica_lag_versions',
    'Packets the replica is behind the stream',
    (r) => r.lagVersions,
  );
  perReplica(
    'lockstep_replica_lag_bytes',
    'WAL bytes the replica is behind the primary',
    (r) => r.lagBytes,
  );
  perReplica(
    'lockstep_replica_lag_seconds',
    'Age of the oldest packet the replica has not applied',
    (r) => r.lagSeconds,
  );
}

/** Per replica: versions, lag, counts and state. */
export function replicaMetrics(kit: MetricKit<ReplicaSet>): void {
  const { take } = kit;
  const perReplicaTotal = (
    name: string,
    help: string,
    value: (r: SidecarSnapshot['replicas'][number]) => number,
  ) => kit.total(name, help, 'replica', (s) => s.replicas.map((r) => [r.name, value(r)] as const));
  replicaLagMetrics(kit);
  perReplicaTotal(
    'lockstep_replica_packets_applied_total',
    'Packets applied',
    (r) => r.packetsApplied,
  );
  perReplicaTotal(
    'lockstep_replica_rows_applied_total',
    'Row changes applied',
    (r) => r.rowsApplied,
  );
  perReplicaTotal(
    'lockstep_replica_apply_errors_total',
    'Failed apply attempts',
    (r) => r.applyErrors,
  );
  perReplicaTotal(
    'lockstep_replica_commits_not_landed_total',
    "Round gids COMMIT PREPARED found rolled back outside lockstep on the replica (it lacks the round's rows until it applies them again)",
    (r) => r.commitsNotLanded,
  );
  new Gauge({
    name: 'lockstep_replica_state',
    help: 'The replica state (1 for the current one)',
    labelNames: ['replica', 'state'],
    registers: [kit.registry],
    collect() {
      this.reset();
      for (const r of take().replicas)
        for (const state of STATES) this.set({ replica: r.name, state }, r.state === state ? 1 : 0);
    },
  });
}

/** The sidecar and its stream: activity, connection, pause, head, the slot. */
function streamMetrics(kit: MetricKit): void {
  const { single, take } = kit;
  single('lockstep_active', '1 when this sidecar holds the coordinator lock (0: standby)', (s) =>
    s.active ? 1 : 0,
  );
  single('lockstep_stream_connected', '1 while the primary stream is connected', (s) =>
    s.streaming ? 1 : 0,
  );
  single('lockstep_paused', '1 while replication is paused (lockstep pause)', (s) =>
    s.paused ? 1 : 0,
  );
  single('lockstep_primary_version', 'Newest packet version of the stream', (s) => s.headVersion);
  single(
    'lockstep_slot_retained_wal_bytes',
    'WAL the replication slot keeps on the primary',
    (s) => s.slotRetainedBytes,
  );
  single(
    'lockstep_slot_safe_wal_bytes',
    'WAL the primary may still write before the slot is invalidated (max_slot_wal_keep_size)',
    (s) => s.slot?.safeWalBytes ?? null,
  );
  new Gauge({
    name: 'lockstep_slot_wal_status',
    help: "The slot's wal_status (1 for the current one; lost: it can never stream again)",
    labelNames: ['status'],
    registers: [kit.registry],
    collect() {
      this.reset();
      const slot = take().slot;
      if (!slot) return;
      // A slot that does not exist is as lost as an invalidated one.
      const current = slot.exists ? slot.walStatus : 'lost';
      for (const status of WAL_STATUSES) this.set({ status }, current === status ? 1 : 0);
    },
  });
}

/** Two-phase rounds and in-doubt prepared transactions. */
function twoPhaseMetrics({ single, total }: MetricKit): void {
  total(
    'lockstep_two_phase_rounds_total',
    'Two-phase rounds finished, by outcome',
    'outcome',
    (s) => [
      ['committed', s.twoPhase.roundsCommitted],
      ['aborted', s.twoPhase.roundsAborted],
    ],
  );

  single(
    'lockstep_two_phase_held',
    '1 while the stream is held at a refused two-phase round',
    (s) => (s.twoPhase.held ? 1 : 0),
  );
  single(
    'lockstep_two_phase_in_doubt',
    'lockstep transactions prepared outside the round in flight',
    (s) => s.inDoubt?.count ?? null,
  );
  single(
    'lockstep_two_phase_in_doubt_oldest_seconds',
    'Age of the oldest in-doubt prepared transaction',
    (s) => s.inDoubt?.oldestSeconds ?? null,
  );
}

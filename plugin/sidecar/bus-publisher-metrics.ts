import { Counter, type Registry } from 'prom-client';
import type { SlotHealth } from '../ports/slot-health.js';
import { slotLoss } from '../ports/slot-health.js';
import type { TwoPhaseStatus } from '../ports/two-phase-status.js';
import type { BusPublisherSnapshot, PublishFailure } from './bus-publisher-snapshot.js';
import { type BusReplicaReading, busReplicaMetrics } from './bus-replica-metrics.js';
import { metricKit, sidecarMetrics } from './sidecar-metrics.js';
import type { SidecarSnapshot } from './sidecar-parts.js';

/** `lockstep run` with `bus` at a scrape: the publisher in memory, and what is read every few seconds. */
export interface BusPublisherView {
  /** Null until the primary is reached and the publisher exists. */
  readonly publisher: BusPublisherSnapshot | null;
  /** The slot as last read (null before the first read). */
  readonly slot: SlotHealth | null;
  readonly twoPhase: TwoPhaseStatus;
  /** Null while unknown: a standby, or the last listing failed. */
  readonly inDoubt: { readonly count: number; readonly oldestSeconds: number } | null;
  /** The replicas as `status` last read them from the agents' reports (null before the first read). */
  readonly replicas: readonly BusReplicaReading[] | null;
}

const FAILURES: readonly PublishFailure[] = ['bus-refused', 'bus-leader-behind', 'bus-unavailable'];

/**
 * The sidecar's series where the meaning is the same (`lockstep_active`, the
 * stream, the head, the slot, two-phase rounds and in-doubt gids, each
 * replica's version and lag as `status` computes them); each agent serves
 * its replica's state and counters. The head is the last version JetStream
 * acknowledged. The rest is the bus's own, `lockstep_bus_`.
 */
export function busPublisherMetrics(view: () => BusPublisherView): Registry {
  // The per-replica series are the replicas' lag, as `status` reads it from the agents' reports.
  const registry = sidecarMetrics(
    () => asSidecar(view()),
    ({ registry }) => busReplicaMetrics(registry, () => view().replicas),
  );
  const { single, total } = metricKit(registry, () => ({ ...view(), replicas: [] }));
  single(
    'lockstep_bus_acknowledged_version',
    'Last packet version JetStream acknowledged whole (stored on a quorum)',
    (v) => v.publisher?.acknowledgedVersion ?? null,
  );
  single(
    'lockstep_bus_confirmed_version',
    "Last version recorded as the stream's head (the slot is confirmed to it bus.serverSyncInterval later)",
    (v) => v.publisher?.confirmedVersion ?? null,
  );
  let published = 0;
  new Counter({
    name: 'lockstep_bus_packets_published_total',
    help: 'Packets this process published to the bus',
    registers: [registry],
    collect() {
      const now = view().publisher?.published ?? 0;
      this.inc(Math.max(0, now - published));
      published = Math.max(now, published);
    },
  });
  total(
    'lockstep_bus_publish_failures_total',
    'Failed tries to publish (then retried), by the event logged',
    'event',
    (v) => FAILURES.map((event) => [event, v.publisher?.failures[event] ?? 0] as const),
  );
  return registry;
}

/** The view as the sidecar's snapshot (what its series read). */
function asSidecar(view: BusPublisherView): SidecarSnapshot {
  const { publisher, slot } = view;
  return {
    active: publisher?.role === 'active',
    streaming: publisher?.streaming ?? false,
    paused: publisher?.paused ?? false,
    headVersion: publisher?.acknowledgedVersion ?? 0,
    slotRetainedBytes: slot?.retainedBytes ?? null,
    slot,
    slotLost: slot ? slotLoss(slot) : null,
    replicas: [],
    twoPhase: view.twoPhase,
    inDoubt: view.inDoubt,
  };
}

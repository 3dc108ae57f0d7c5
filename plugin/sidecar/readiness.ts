import type { BusPublisherSnapshot } from './bus-publisher-snapshot.js';
import type { SidecarSnapshot } from './sidecar.js';

/** What this `lockstep run` process is doing. */
export type SidecarRole = 'starting' | 'active' | 'standby' | 'stopping';

/** `/readyz`: ready, this process's role, and why it is not ready. */
export interface Readiness {
  readonly ready: boolean;
  readonly role: SidecarRole;
  readonly reasons: readonly string[];
}

/**
 * Ready when the process is initialised (it reached the primary and checked
 * the control schema) and serving, whether active or standing by; not while
 * it starts or stops. Replication's own health (lag, halted or stale
 * replicas, a pause, a disconnected stream) is deliberately not part of it:
 * readiness decides whether a pod takes traffic or lets a rollout go on, and
 * a lagging replica is no reason to restart or reschedule the sidecar. It is
 * reported by `/metrics` and alerted on (`deploy/prometheus/lockstep-rules.yaml`).
 */
export function readiness(
  snapshot: Pick<SidecarSnapshot, 'active'> | null,
  stopping: boolean,
): Readiness {
  if (stopping) return { ready: false, role: 'stopping', reasons: ['stopping'] };
  if (!snapshot)
    return {
      ready: false,
      role: 'starting',
      reasons: ['starting: waiting to reach the primary and check the control schema'],
    };
  return { ready: true, role: snapshot.active ? 'active' : 'standby', reasons: [] };
}

/**
 * `/readyz` of `lockstep run` with `bus`: the same contract as in process.
 * Ready once the publisher reached the primary and runs, active or standing
 * by (a Deployment's second pod is the standby: not ready, it would stall
 * rollouts and its disruption budget); not while it starts or stops. A lost
 * slot, like lag, is in the metrics and alerted on, not a reason to restart.
 */
export function busPublisherReadiness(
  publisher: Pick<BusPublisherSnapshot, 'role'> | null,
  stopping: boolean,
): Readiness {
  if (stopping || publisher?.role === 'stopping')
    return { ready: false, role: 'stopping', reasons: ['stopping'] };
  if (!publisher || publisher.role === 'starting')
    return {
      ready: false,
      role: 'starting',
      reasons: ['starting: waiting to reach the primary and check the control schema'],
    };
  return { ready: true, role: publisher.role, reasons: [] };
}

import type { SidecarSnapshot } from './sidecar.js';

/** `/readyz`: ready, or every reason it is not. */
export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

/** States in which a replica counts as following the stream. */
const FOLLOWING = new Set(['streaming', 'catching-up']);

/**
 * Ready when this sidecar is the active one, the primary stream is connected,
 * and every replica follows it within `maxLagBytes`; otherwise each reason.
 */
export function readiness(snapshot: SidecarSnapshot, maxLagBytes: number): Readiness {
  const reasons: string[] = [];
  if (!snapshot.active) reasons.push('standby: another lockstep sidecar is active for this stream');
  else if (snapshot.paused) reasons.push('replication is paused (lockstep resume continues it)');
  else if (!snapshot.streaming) reasons.push('the primary stream is not connected');
  for (const r of snapshot.replicas) {
    if (!FOLLOWING.has(r.state)) {
      const why = r.error ? `: ${r.error.split('\n')[0]}` : '';
      reasons.push(`replica ${r.name} is ${r.state}${why}`);
    } else if (r.lagBytes !== null && r.lagBytes > maxLagBytes) {
      reasons.push(`replica ${r.name} is ${r.lagBytes} bytes behind (maxLagBytes ${maxLagBytes})`);
    }
  }
  return { ready: reasons.length === 0, reasons };
}

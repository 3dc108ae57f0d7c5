import type { BusReplicaReading } from '../sidecar/bus-replica-metrics.js';
import type { LockstepStatus, ReplicaStatus } from '../status/read-status.js';

/** Longest one read of the replicas may take (ms); past it they all count as unreported. */
export const READ_REPLICAS_MS = 10_000;

/**
 * The replicas as `status` reads them with `bus` (their agents' reports,
 * lag against the primary), for the publisher's metrics. Bounded: a bus or
 * primary that does not answer within `ms` leaves every replica unreported
 * with no lag, never as caught up as it was last seen.
 */
export async function readBusReplicaLag(
  status: () => Promise<LockstepStatus>,
  names: readonly string[],
  ms = READ_REPLICAS_MS,
): Promise<BusReplicaReading[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    const read = await Promise.race([status(), late]);
    return read ? read.replicas.map(reading) : names.map(unreported);
  } catch {
    return names.map(unreported);
  } finally {
    clearTimeout(timer);
  }
}

function reading(r: ReplicaStatus): BusReplicaReading {
  const { name, version, lagVersions, lagBytes, lagSeconds, reachable } = r;
  return { name, version, lagVersions, lagBytes, lagSeconds, reachable };
}

function unreported(name: string): BusReplicaReading {
  return {
    name,
    version: null,
    lagVersions: null,
    lagBytes: null,
    lagSeconds: null,
    reachable: false,
  };
}

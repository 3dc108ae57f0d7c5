/** What a bus publisher is doing: `starting` until it first asks for the lock. */
export type PublisherRole = 'starting' | 'active' | 'standby' | 'stopping';

/** Why publishing last failed, as logged (`event`). */
export type PublishFailure = 'bus-refused' | 'bus-leader-behind' | 'bus-unavailable';

/**
 * What `lockstep run` with `bus` knows of its publishing, read in memory
 * (no query): `/readyz` and `/metrics` take it at each request.
 */
export interface BusPublisherSnapshot {
  readonly role: PublisherRole;
  /** The primary stream is open and its packets go to the bus. */
  readonly streaming: boolean;
  /** Replication is paused (`lockstep pause`): no stream, the lock kept. */
  readonly paused: boolean;
  /** The last version JetStream acknowledged whole (or where the bus ended at the last start); 0 before. */
  readonly acknowledgedVersion: number;
  /** The last version recorded as the stream's head (the slot confirmed to it `bus.serverSyncInterval` later); null before. */
  readonly confirmedVersion: number | null;
  /** Packets published by this process. */
  readonly published: number;
  /** Failed tries to publish, by why (each logged once, then retried). */
  readonly failures: Readonly<Record<PublishFailure, number>>;
}

import { sleep } from '../support/sleep.js';
import type { SidecarParts } from './sidecar-parts.js';
import type { SidecarState } from './sidecar-state.js';
import type { SlotKeeper } from './slot-keeper.js';
import type { StatusReporter } from './status-reporter.js';
import type { StreamPump } from './stream-pump.js';

/** What housekeeping drives besides the slot keeper and the status reporter. */
export interface HousekeepingParts {
  readonly slots: SlotKeeper;
  readonly reporter: StatusReporter;
  readonly pump: StreamPump;
  /** Reads the pause flag again (should a notification have been missed). */
  readonly followPause: () => Promise<void>;
}

/** Confirms the slot, marks stale replicas and records status, a few times a second. */
export async function runHousekeeping(
  parts: SidecarParts,
  state: SidecarState,
  { slots, reporter, pump, followPause }: HousekeepingParts,
): Promise<void> {
  let lastWrite = 0;
  let statusFailing = false;
  let lastStaleCheck = 0;
  let lastSequenceSync = Date.now();
  // The copy runs beside the loop: a primary that does not answer delays the copy (up to
  // controlTimeoutMs), not the slot's confirmation, stale marks and status (a replica's
  // copy is not waited for at all). Not awaited at the end: a setval is atomic.
  let sequenceSync: Promise<void> | null = null;
  while (!state.stopping) {
    await sleep(200);
    await slots.readJoinHolds();
    slots.confirmSlot();
    pump.noteIdle();
    const now = Date.now();
    try {
      if (now - lastStaleCheck > 5_000) {
        lastStaleCheck = now;
        // Should a notification have been missed.
        await followPause();
        await reporter.observe();
        // Also for replicas added while running: a position the slot no longer has is stale
        // (against the slot observe() just read).
        await slots.markGoneAt(state.observed.slot?.confirmedLsn ?? null);
        await slots.markStale();
        await slots.followStaleMarks();
      }
      const every = parts.sequenceSyncMs;
      if (every > 0 && parts.syncSequences && !sequenceSync && now - lastSequenceSync >= every) {
        lastSequenceSync = now;
        sequenceSync = parts
          .syncSequences()
          .catch((error: unknown) =>
            parts.log.warn(
              { err: (error as Error).message, event: 'sequence-sync-failed' },
              'sequence values not copied now',
            ),
          )
          .finally(() => {
            sequenceSync = null;
          });
      }
      if (state.statusDirty || now - lastWrite > 5_000) {
        lastWrite = now;
        state.statusDirty = false;
        await reporter.writeStatus();
        statusFailing = false;
      }
    } catch (error) {
      // Tried again at the next turn; said once until a write gets through.
      state.statusDirty = true;
      if (!statusFailing)
        parts.log.warn({ err: (error as Error).message }, 'cannot record status on the primary');
      statusFailing = true;
    }
  }
}

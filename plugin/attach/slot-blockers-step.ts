import type { SlotBlocker } from '../ports/replication-slots.js';
import type { AttachProgress } from './attach-progress.js';

/** What a slot's creation waits for (it must end first), and how to end it. */
export function slotBlockersStep(
  found: readonly SlotBlocker[],
): Parameters<AttachProgress['step']> {
  return [
    'creating the slot waits for running transactions',
    {
      node: 'primary',
      transactions: found.map(
        (b) =>
          `pid ${b.pid} (${b.state} for ${b.ageSeconds} s${b.application ? `, ${b.application}` : ''}${b.user ? `, user ${b.user}` : ''})`,
      ),
      fix: 'end them: COMMIT or ROLLBACK there, or SELECT pg_terminate_backend(pid)',
    },
  ];
}

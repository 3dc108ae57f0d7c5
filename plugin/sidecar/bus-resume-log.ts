import type { Logger } from 'pino';
import type { BusResume } from './bus-resume.js';

/** What resuming changed on or below the bus, logged before publishing starts. */
export function logResume(log: Logger, plan: BusResume): void {
  if (plan.repaired) {
    const { from, to, after, found, unsigned } = plan.repaired;
    log.warn(
      { from, to, after, found, unsigned: unsigned ?? false, event: 'bus-tail-repaired' },
      'removed messages that broke the chain from the bus: re-deriving them',
    );
  }
  if (plan.rederived) {
    const { packets, head } = plan.rederived;
    log.warn(
      { packets, version: plan.resume.version, head: head.version, event: 'bus-rederiving' },
      'the bus lacks packets below the recorded head: publishing them again from the slot',
    );
  }
}

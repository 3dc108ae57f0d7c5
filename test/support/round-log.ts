import type { LockstepProcess } from './lockstep-process.js';

/** The coordinator's log line of an aborted round that `replica` refused (for a reason matching `why`). */
export function refusedBy(coordinator: LockstepProcess, replica: string, why = /./) {
  return coordinator.logLines().find((l) => {
    const reason = (l.refusals as Record<string, string> | undefined)?.[replica];
    return (
      /^two-phase round aborted/.test(String(l.msg)) && reason !== undefined && why.test(reason)
    );
  });
}

import { ConfigError } from '../config/load-config.js';
import { LockstepError } from '../lockstep-error.js';

/** Prints problems found by doctor (or refusing attach) as `node[, table]: problem / fix` blocks. */
export function printProblems(
  problems: readonly LockstepError[],
  out: NodeJS.WritableStream = process.stderr,
): void {
  for (const p of problems) out.write(`✗ ${p.message}\n`);
}

/**
 * Turns any failure into a clear message and exit code 1: lockstep's own errors
 * print as they are (node, table, fix), anything else prints its message only —
 * never a bare stack trace (set LOCKSTEP_DEBUG=1 for one).
 */
export function reportFailure(error: unknown): never {
  if (error instanceof LockstepError || error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
  } else {
    const e = error as Error;
    process.stderr.write(`lockstep: ${e?.message ?? String(error)}\n`);
  }
  if (process.env.LOCKSTEP_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  process.exit(1);
}

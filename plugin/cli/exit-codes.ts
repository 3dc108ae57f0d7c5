import { CommanderError } from 'commander';
import { isNodeLost } from '../attach/node-step.js';
import { ConfigError } from '../config/load-config.js';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import type { StatusHealth } from '../status/status-health.js';

/** The exit codes of every command (README "Exit codes and automation"; DESIGN.md contract). */
export const ExitCode = {
  /** Done; nothing wrong found. */
  ok: 0,
  /** Problems found, or the operation refused. */
  problems: 1,
  /** Usage or configuration error: bad flags, an invalid configuration file or key. */
  usage: 2,
  /** A node that was needed could not be reached (refused, timed out, login failed). */
  unreachable: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A command line that cannot be acted on (a missing or contradictory flag): exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly fix = 'see lockstep <command> --help',
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The exit code for an error that ended a command. */
export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  if (error instanceof ConfigError || error instanceof UsageError) return ExitCode.usage;
  // A raw node loss no step named counts too (steps name their node with nodeStepError).
  if (isConnectionFailure(error) || isNodeLost(error)) return ExitCode.unreachable;
  return ExitCode.problems;
}

/**
 * The exit code of a report that lists problems: an unreachable node wins,
 * since what could not be checked there may hide more problems.
 */
export function exitCodeForProblems(problems: readonly unknown[]): ExitCode {
  if (problems.some(isConnectionFailure)) return ExitCode.unreachable;
  return problems.length > 0 ? ExitCode.problems : ExitCode.ok;
}

/** `status`: an unreachable node is 3; a troubled replica, a lost slot or a diverged migration history 1. */
export function exitCodeForStatus(health: StatusHealth): ExitCode {
  if (health.unreachable.length > 0) return ExitCode.unreachable;
  const problems = health.troubled.length > 0 || health.slotLost || health.diverged.length > 0;
  return problems ? ExitCode.problems : ExitCode.ok;
}

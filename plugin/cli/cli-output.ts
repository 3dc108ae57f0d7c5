import { CommanderError } from 'commander';
import { isNodeLost, SYNC_REP_HINT } from '../attach/node-step.js';
import { ConfigError } from '../config/load-config.js';
import { failedNode } from '../ports/failed-node.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { ExitCode, exitCodeFor, UsageError } from './exit-codes.js';

/** Prints problems found by doctor (or refusing attach) as `node[, table]: problem / fix` blocks. */
export function printProblems(
  problems: readonly LockstepError[],
  out: NodeJS.WritableStream = process.stderr,
): void {
  for (const p of problems) out.write(`✗ ${p.message}\n`);
}

/** A problem as `--json` shows it: the node (null when none), what is wrong, the fix. */
export interface ProblemJson {
  node: string | null;
  table: string | null;
  setting: string | null;
  problem: string;
  fix: string;
}

/** A lockstep error in `--json` form. */
export function problemJson(error: LockstepError): ProblemJson {
  return {
    node: error.node,
    table: error.table ?? null,
    setting: error.setting ?? null,
    problem: error.problem,
    fix: error.fix,
  };
}

/** The `{ "error": … }` object of a failed command in `--json` mode; `code` is its exit code. */
export function errorJson(error: unknown): { error: ProblemJson & { code: ExitCode } } {
  const code = exitCodeFor(error);
  if (error instanceof LockstepError) return { error: { ...problemJson(error), code } };
  const fix =
    error instanceof ConfigError
      ? 'correct the keys named in the problem (or the LOCKSTEP_* variables they came from)'
      : error instanceof UsageError
        ? error.fix
        : error instanceof CommanderError
          ? 'see lockstep <command> --help'
          : 'see the problem; LOCKSTEP_DEBUG=1 prints the stack';
  // Commander's messages start with "error: ", which the JSON's key already says.
  const problem = ((error as Error)?.message ?? String(error)).replace(/^error: /, '');
  return { error: { node: null, table: null, setting: null, problem, fix, code } };
}

/** Writes a value as the command's `--json` output. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Whether the command line asks for JSON output (also for errors found before a command runs). */
export function jsonRequested(argv: readonly string[] = process.argv): boolean {
  return argv.includes('--json');
}

/**
 * Ends the process for any failure, with the exit code `exitCodeFor` gives:
 * lockstep's own errors print as they are (node, table, fix), anything else
 * its message only — never a bare stack trace (LOCKSTEP_DEBUG=1 for one). In
 * `--json` mode the error is printed as JSON on stdout.
 */
export function reportFailure(failure: unknown, json = jsonRequested()): never {
  const error = namedNodeLoss(failure);
  const code = exitCodeFor(error);
  // Commander has printed its usage error (or help, or the version) itself.
  if (error instanceof CommanderError && !json) process.exit(code);
  if (code !== ExitCode.ok) {
    if (json) printJson(errorJson(error));
    else if (error instanceof LockstepError || error instanceof ConfigError)
      process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`lockstep: ${(error as Error)?.message ?? String(error)}\n`);
  }
  if (process.env.LOCKSTEP_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  process.exit(code);
}

/**
 * A raw pg error for a node that stopped answering or closed the session,
 * which no step named, as a LockstepError saying so and what to check
 * (exit 3), naming the node its connection stamped on it; any other error
 * as it is.
 */
export function namedNodeLoss(error: unknown): unknown {
  if (error instanceof LockstepError || !isNodeLost(error)) return error;
  const node = failedNode(error);
  const which =
    node === undefined
      ? 'a node (not known which)'
      : node === 'primary'
        ? 'the primary'
        : `replica "${node}"`;
  return new LockstepError({
    node: node ?? 'unknown',
    setting: 'connection',
    problem: `${which} stopped answering or closed the session: ${(error as Error).message}`,
    fix: `${node === undefined ? 'run lockstep status to see which node does not answer, and check' : 'check'} that its server runs (not stopped, not overloaded; controlTimeoutMs bounds lockstep's control queries); on a primary, ${SYNC_REP_HINT}; then run this again`,
    cause: error,
  });
}

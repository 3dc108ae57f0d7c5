import type pg from 'pg';
import {
  connectBounded,
  dropClient,
  endClient,
} from '../../adapters/postgres/connection/node-connection.js';
import {
  type PositionWaitResult,
  type ReplicaPosition,
  type WaitTarget,
  waitForPositions,
} from '../client/replica-positions.js';
import { barrierOn } from '../client/wait-for-replicas.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import { toLsn } from '../protocol/index.js';
import { printJson } from './cli-output.js';
import { ExitCode, UsageError } from './exit-codes.js';
import {
  openWaitSessions,
  WAIT_FINAL_READ_MS,
  WAIT_MAX_TIMEOUT_S,
  waitQueryTimeoutMs,
} from './wait-sessions.js';

/** The flags of `lockstep wait`. */
export interface WaitFlags {
  config?: string;
  lsn?: string;
  version?: string;
  replica?: string[];
  timeout: number;
  json?: boolean;
}

/** `--lsn` or `--version`, exactly one, checked. */
function targetOf(flags: WaitFlags): WaitTarget {
  if ((flags.lsn === undefined) === (flags.version === undefined))
    throw new UsageError('give exactly one of --lsn and --version');
  if (flags.lsn !== undefined) {
    try {
      return { lsn: toLsn(flags.lsn) };
    } catch {
      throw new UsageError(`--lsn ${flags.lsn}: not an LSN (expected e.g. 0/16B3748)`);
    }
  }
  const version = Number(flags.version);
  if (!Number.isSafeInteger(version) || version < 0)
    throw new UsageError(`--version ${flags.version}: not a stream version (a whole number)`);
  return { version };
}

/** The replicas to wait for: all, or those named by `--replica`. */
function chosenReplicas(config: LockstepConfig, names: readonly string[] | undefined) {
  if (!names || names.length === 0) return config.replicas;
  const unknown = names.filter((n) => !config.replicas.some((r) => r.name === n));
  if (unknown.length > 0)
    throw new UsageError(
      `--replica ${unknown.join(', ')}: no such replica in the configuration`,
      `use one of: ${config.replicas.map((r) => r.name).join(', ')}`,
    );
  return config.replicas.filter((r) => names.includes(r.name));
}

/** Commits a barrier on the primary, so an idle primary still gives the replicas an LSN past the target. */
async function primaryBarrier(config: LockstepConfig, timeoutMs: number): Promise<void> {
  // Its query ends soon after the wait's timeout, and (connectBounded) its backend once the client is gone:
  // a frozen primary neither keeps the process alive for ever nor keeps a session once thawed.
  const primary = await connectBounded(
    'primary',
    config.primary,
    'lockstep-wait',
    waitQueryTimeoutMs(timeoutMs),
  );
  try {
    await barrierOn(primary)();
  } finally {
    await endClient(primary);
  }
}

function describe(target: WaitTarget): string {
  return 'lsn' in target ? `lsn ${target.lsn}` : `version ${target.version}`;
}

function where(p: ReplicaPosition): string {
  return p.version === null
    ? `${p.name} (position unknown)`
    : `${p.name} at version ${p.version} (lsn ${p.lsn})`;
}

/**
 * `lockstep wait`: exits 0 once every (or each named) replica has applied the
 * target, 1 on timeout (naming who is behind and where, and who did not
 * answer its final read), 3 when a replica (or the primary, for an LSN's
 * barrier) cannot be reached.
 */
export async function waitCommand(flags: WaitFlags): Promise<ExitCode> {
  const target = targetOf(flags);
  if (flags.timeout > WAIT_MAX_TIMEOUT_S)
    throw new UsageError(
      `--timeout ${flags.timeout}: at most ${WAIT_MAX_TIMEOUT_S} s (about 24 days)`,
      'give a shorter timeout, or run lockstep wait again when it ends (exit 1)',
    );
  const config = loadConfig(flags.config);
  const replicas = chosenReplicas(config, flags.replica);
  const timeoutMs = flags.timeout * 1000;
  const clients: pg.Client[] = [];
  let reached = false;
  const started = Date.now();
  try {
    clients.push(...(await openWaitSessions(replicas, timeoutMs)));
    // Connecting may take some of the final read's grace too: the command ends by S + grace.
    const left = timeoutMs - (Date.now() - started);
    const result = await waitForPositions(
      replicas.map((r, i) => ({ name: r.name, db: clients[i] as pg.Client })),
      target,
      {
        // One timeout for the whole command, connecting included.
        timeoutMs: Math.max(0, left),
        stream: config.slot,
        nudge: 'lsn' in target ? () => primaryBarrier(config, timeoutMs) : undefined,
        finalReadMs: Math.max(0, WAIT_FINAL_READ_MS + Math.min(0, left)),
      },
    );
    reached = result.reached;
    report(flags, target, result);
    return result.reached ? ExitCode.ok : ExitCode.problems;
  } finally {
    // Timed out, a replica may not answer (a frozen host): its session is dropped, not waited on.
    if (reached) await Promise.all(clients.map(endClient));
    else for (const client of clients) dropClient(client);
  }
}

function report(flags: WaitFlags, target: WaitTarget, result: PositionWaitResult): void {
  if (flags.json) printJson({ reached: result.reached, target, replicas: result.replicas });
  else if (result.reached)
    process.stdout.write(`reached ${describe(target)}: ${result.replicas.map(where).join(', ')}\n`);
  else
    process.stderr.write(
      `timed out after ${flags.timeout} s waiting for ${describe(target)}; ${missed(result)}\n`,
    );
}

/** Who is behind (from a position read), and who did not answer its final read (with its last position read). */
function missed(result: PositionWaitResult): string {
  const silent = new Set(result.unanswered);
  const behind = result.replicas.filter((p) => !p.reached && !silent.has(p.name));
  const unanswered = result.replicas.filter((p) => silent.has(p.name));
  return [
    behind.length > 0 ? `behind: ${behind.map(where).join(', ')}` : '',
    unanswered.length > 0
      ? `did not answer: ${unanswered.map((p) => (p.version === null ? p.name : `${where(p)} when last read`)).join(', ')}`
      : '',
  ]
    .filter(Boolean)
    .join('; ');
}

import type { Logger } from 'pino';
import { isUnanswered, primaryStepError } from '../attach/node-step.js';
import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { FaultHook } from '../coordinator/fault-point.js';
import { recoverPrepared } from '../coordinator/recover-prepared.js';
import type { RecoveryWiring } from '../coordinator/run-recovery.js';
import type { ControlSchemaMigrator } from '../ports/control-schema-migrator.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { MigrationNodeSession } from '../ports/migration-session.js';
import type { PauseReader } from '../ports/pause-reader.js';
import { parseTablePattern, wholeSchemas } from '../protocol/index.js';
import { sleep } from '../support/sleep.js';
import { readMigrationFiles, sqlStep } from './migration-files.js';
import {
  type MigrationContext,
  type MigrationRoundResult,
  requireSqlSteps,
  runMigrationRound,
} from './migration-round.js';
import { refuseUnknownReplicas } from './refuse-unknown-replicas.js';

/** Where `migrate` and `exec` write what they did. */
export type MigrateOutput = (line: string) => void;

/** Options of the migrate commands. */
export interface MigrateOptions {
  /** The project's migrations folder. */
  readonly dir: string;
  /** `up`: stop after this migration. */
  readonly to?: string;
  /** Prepare everywhere and roll back: report the votes, change nothing. */
  readonly dryRun?: boolean;
  readonly log: Logger;
  readonly fault?: FaultHook;
  /** The adapters (the composition root's). */
  readonly wiring: MigrateWiring;
}

/** What migrate and exec reach the nodes through, besides recovery's locks, log and phase two. */
export interface MigrateWiring extends RecoveryWiring {
  /** A node's side of a migration round. */
  migrationSession(node: string, url: string): MigrationNodeSession;
  readonly migrateControlSchemas: ControlSchemaMigrator;
  /** Whether the stream is paused (on the primary). */
  readonly pausedSince: PauseReader;
  /** The replicas without a position in the stream (never placed by attach). */
  unplacedReplicas(): Promise<ReadonlySet<string>>;
  /** The replicas the stream serves (the running sidecar's, or with `bus` the live agents'). */
  servedReplicas(): Promise<readonly string[]>;
  /** With `bus`: the agents run only the work committed with the barrier (plain SQL). */
  readonly vouchWork?: boolean;
  /** With `bus`: the replicas served are those whose agent reports to the bus. */
  readonly servedByAgents?: boolean;
}

/** How long a second `migrate` waits for the first to finish before giving up. */
const LOCK_WAIT_MS = 30_000;

/** A round waits for every replica to reach the primary's position, which a paused stream never lets happen. */
async function refuseWhilePaused(config: LockstepConfig, wiring: MigrateWiring): Promise<void> {
  const since = await wiring.pausedSince();
  if (since)
    throw new LockstepError({
      node: 'primary',
      problem: `replication of stream "${config.slot}" is paused (since ${since.toISOString()}): a two-phase round needs every replica to catch up first`,
      fix: 'run lockstep resume, then run this again',
    });
}

/**
 * A replica without a position in the stream (never attached, or its attach
 * did not finish) never applies the stream up to a migration's barrier: no
 * running sidecar changes that, only attach does. Refused before any round.
 */
async function refuseUnplaced(config: LockstepConfig, wiring: MigrateWiring): Promise<void> {
  const unplaced = [...(await wiring.unplacedReplicas())];
  const [first] = unplaced;
  if (first === undefined) return;
  const others = unplaced.slice(1);
  throw new LockstepError({
    node: first,
    setting: 'position',
    problem: `the replica has no position in stream "${config.slot}": it was never attached, or its attach did not finish${others.length ? ` (nor have ${others.join(', ')})` : ''}; a two-phase round needs every replica in the stream`,
    fix: `run lockstep attach with this configuration (it copies ${unplaced.join(', ')} and places ${unplaced.length > 1 ? 'them' : 'it'} in the stream), then run this again`,
  });
}

/** Runs `body` as the only migration of the stream: the migrate lock, control tables, leftovers recovered. */
async function asMigrator<T>(
  config: LockstepConfig,
  options: Pick<MigrateOptions, 'log' | 'fault' | 'wiring'>,
  body: (context: MigrationContext) => Promise<T>,
): Promise<T> {
  const { log, fault, wiring } = options;
  const lock = wiring.streamLock('migrate');
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (!(await lock.tryAcquire())) {
    if (Date.now() > deadline) {
      throw new LockstepError({
        node: 'primary',
        problem: `another lockstep migrate or exec for stream "${config.slot}" is running (it holds the migrate lock)`,
        fix: 'wait for it to finish and run this again',
      });
    }
    await sleep(500);
  }
  // Its session ended under a running migration (the primary paused or cut off for longer than
  // the lock session's idle bound): a recovery may now abort what it prepared; the decision log
  // keeps either outcome whole, and this says why it went that way.
  lock.onLost(() =>
    log.warn({ stream: config.slot, event: 'migrate-lock-lost' }, 'lost the migrate lock'),
  );
  const nodes = wiring.phaseTwoNodes();
  const decisions = wiring.decisionLog();
  try {
    await wiring.migrateControlSchemas(configNodes(config));
    await refuseWhilePaused(config, wiring);
    refuseUnknownReplicas(config, await wiring.servedReplicas(), wiring.servedByAgents);
    await refuseUnplaced(config, wiring);
    // A migration a crash left prepared is finished first (we hold the migrate lock: none is in flight).
    const recovered = await recoverPrepared(config.slot, [...nodes.values()], decisions, {
      kinds: ['migration'],
    });
    for (const r of recovered.resolved) log.warn(r, 'recovered a migration by the decision log');
    return await body({
      stream: config.slot,
      primaryUrl: config.primary,
      replicas: config.replicas,
      publication: {
        name: config.publication,
        patterns: config.tables.map(parseTablePattern),
        schemas: config.twoPhase.captureDdl ? wholeSchemas(config.tables) : [],
      },
      nodes,
      decisions,
      log,
      lockTimeoutMs: config.twoPhase.voteTimeoutMs,
      voteTimeoutMs: Math.max(600_000, config.twoPhase.voteTimeoutMs),
      barrierTimeoutMs: 60_000,
      answerTimeoutMs: config.applyTimeoutMs,
      retryInitialMs: config.retry.initialMs,
      retryMaxMs: config.retry.maxMs,
      fault,
      session: wiring.migrationSession,
      vouchWork: wiring.vouchWork,
    });
  } finally {
    await decisions.close();
    for (const node of nodes.values()) await node.close();
    await lock.release();
  }
}

/**
 * The primary's history, read before anything is prepared: the session's
 * read has applyTimeoutMs (the wiring's), and a primary that does not answer
 * is named, unreachable (exit 3), as in every operator command.
 */
async function readPrimaryHistory(config: LockstepConfig, context: MigrationContext) {
  try {
    return await context.session('primary', config.primary).history();
  } catch (error) {
    if (!isUnanswered(error)) throw error;
    throw primaryStepError(
      'reading the migration history (nothing prepared yet)',
      config.applyTimeoutMs,
      error,
      'run this again',
    );
  }
}

/** Every node's vote and reason, as a table. */
export function formatVotes(result: MigrationRoundResult): string[] {
  const rows = result.nodes.map((n) => [
    n.node,
    n.state === 'refused'
      ? 'no'
      : n.state === 'rolled-back' || n.state === 'committed'
        ? 'yes'
        : 'none',
    (n.reason ?? '').split('\n')[0] ?? '',
  ]);
  const widths = [4, 4].map((w, i) => Math.max(w, ...rows.map((r) => (r[i] ?? '').length)));
  const lines = [`${'node'.padEnd(widths[0] ?? 4)}  ${'vote'.padEnd(widths[1] ?? 4)}  reason`];
  for (const r of rows)
    lines.push(
      `${(r[0] ?? '').padEnd(widths[0] ?? 4)}  ${(r[1] ?? '').padEnd(widths[1] ?? 4)}  ${r[2]}`.trimEnd(),
    );
  if (result.coordinator) lines.push(`coordinator: ${result.coordinator}`);
  for (const n of result.nodes) {
    const fix = /\n\s*fix: (.*)/.exec(n.reason ?? '')?.[1];
    if (fix) lines.push(`  ${n.node}: fix: ${fix}`);
  }
  return lines;
}

/**
 * Prints how a round ended — where it was done, or (refused, or a dry run)
 * every node's vote — and whether it did what was asked: committed, or for a
 * dry run, every node could apply it.
 */
function reportRound(
  result: MigrationRoundResult,
  dryRun: boolean | undefined,
  text: {
    readonly done: string;
    readonly label: string;
    /** A dry run's line says whether every node can apply it (migrate up). */
    readonly verdict?: boolean;
  },
  out: MigrateOutput,
): boolean {
  const { done, label } = text;
  if (!dryRun && result.outcome === 'committed') {
    const landed = result.nodes.filter((n) => n.state === 'committed');
    out(`${done} on ${landed.map((n) => n.node).join(', ')} (${result.gid})`);
    if (landed.length === result.nodes.length) return true;
    // Rolled back outside lockstep on a node after the decision: it lacks the migration.
    for (const n of result.nodes.filter((n) => n.state !== 'committed'))
      out(`  not on ${n.node}: ${n.reason ?? 'its transaction did not commit'}`);
    return false;
  }
  const everyone = dryRun === true && result.nodes.every((n) => n.state === 'rolled-back');
  out(
    !dryRun
      ? `${label}refused — nothing changed on any node`
      : text.verdict
        ? `${label}dry run — ${everyone ? 'every node can apply it' : 'refused'}; nothing was changed`
        : `${label}dry run — nothing changed on any node`,
  );
  for (const line of formatVotes(result)) out(`  ${line}`);
  // A replica that did not answer: unreachable (exit 3), as a node that refuses connections.
  if (result.unanswered) throw result.unanswered;
  return everyone;
}

/**
 * `lockstep migrate up`: each pending migration, in name order, as one
 * two-phase round with the primary in it. Returns false (after printing every
 * node's vote) when one is refused: it and the ones after it are not applied.
 */
export async function migrateUp(
  config: LockstepConfig,
  options: MigrateOptions,
  out: MigrateOutput,
): Promise<boolean> {
  const files = await readMigrationFiles(options.dir);
  if (options.to && !files.some((f) => f.name === options.to)) {
    throw new LockstepError({
      node: 'primary',
      problem: `--to ${options.to}: no such migration in ${options.dir}`,
      fix: `use one of: ${files.map((f) => f.name).join(', ')}`,
    });
  }
  return asMigrator(config, options, async (context) => {
    const primaryHistory = await readPrimaryHistory(config, context);
    const applied = new Map(primaryHistory.map((h) => [h.name, h.checksum]));
    for (const f of files) {
      const checksum = applied.get(f.name);
      if (checksum && checksum !== f.checksum) {
        throw new LockstepError({
          node: 'primary',
          problem: `migration ${f.name} was changed after it was applied (its checksum differs from the one recorded)`,
          fix: `restore ${f.file} as it was, and put the change in a new migration`,
        });
      }
    }
    const pending: typeof files = [];
    for (const f of files) {
      if (!applied.has(f.name)) pending.push(f);
      if (f.name === options.to) break;
    }
    if (pending.length === 0) {
      out('nothing to migrate: every migration is applied');
      return true;
    }
    if (context.vouchWork) for (const f of pending) requireSqlSteps([f.up], f.name);
    for (const f of pending) {
      const result = await runMigrationRound(context, {
        step: f.up,
        history: { op: 'insert', name: f.name, checksum: f.checksum },
        dryRun: options.dryRun === true,
      });
      if (
        !reportRound(
          result,
          options.dryRun,
          { done: `${f.name}: applied`, label: `${f.name}: `, verdict: true },
          out,
        )
      )
        return false;
    }
    return true;
  });
}

/** `lockstep migrate down`: the last applied migration's down part, as one round. */
export async function migrateDown(
  config: LockstepConfig,
  options: MigrateOptions,
  out: MigrateOutput,
): Promise<boolean> {
  const files = await readMigrationFiles(options.dir);
  return asMigrator(config, options, async (context) => {
    const history = await readPrimaryHistory(config, context);
    const last = history[history.length - 1];
    if (!last) {
      out('nothing to undo: no migration is applied');
      return true;
    }
    const file = files.find((f) => f.name === last.name);
    if (!file?.down) {
      throw new LockstepError({
        node: 'primary',
        problem: `migration ${last.name} has ${file ? 'no down part' : 'no file in the folder'}`,
        fix: file
          ? 'add a "-- lockstep:down" section (SQL) or a down(db) export (module)'
          : `restore ${last.name} in ${options.dir}`,
      });
    }
    if (context.vouchWork) requireSqlSteps([file.down], file.name);
    const result = await runMigrationRound(context, {
      step: file.down,
      history: { op: 'delete', name: file.name },
      dryRun: options.dryRun === true,
    });
    return reportRound(
      result,
      options.dryRun,
      { done: `${file.name}: undone`, label: `${file.name} (down): ` },
      out,
    );
  });
}

/** `lockstep exec --sql S`: one statement on every node, two-phase (not recorded in the history). */
export async function execStatement(
  config: LockstepConfig,
  sql: string,
  options: Pick<MigrateOptions, 'log' | 'fault' | 'dryRun' | 'wiring'>,
  out: MigrateOutput,
): Promise<boolean> {
  const step = sqlStep(sql, '--sql');
  return asMigrator(config, options, async (context) => {
    const result = await runMigrationRound(context, {
      step,
      history: null,
      dryRun: options.dryRun === true,
    });
    return reportRound(result, options.dryRun, { done: 'executed', label: '' }, out);
  });
}

#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import type { LockstepConfig } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import { jsonRequested, printProblems, reportFailure } from './cli-output.js';
import { ExitCode, exitCodeForProblems, UsageError } from './exit-codes.js';
import { type AttachCommandOptions, positiveInt } from './option-parsers.js';
import type { StatusFlags } from './status-command.js';
import type { WaitFlags } from './wait-command.js';

/** The flags of `lockstep migrate`. */
interface MigrateFlags {
  config?: string;
  dir: string;
  to?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** Parses a number of seconds; anything else is a usage error (exit 2). */
function positiveNumber(text: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value))
    throw new InvalidArgumentError('expected a number of seconds above 0');
  return value;
}

/** lockstep's version, from its package.json. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(packageJsonPath(), 'utf8')) as { version: string }).version;
}

/** lockstep's package.json, found from this file whether it runs from source or from dist/. */
function packageJsonPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir)
    dir = path.dirname(dir);
  return path.join(dir, 'package.json');
}

/** Log, fault hook and adapters of a command that runs rounds itself (migrate, exec): its own output is the report. */
async function roundTooling(config: LockstepConfig) {
  const [{ createLogger }, { faultFromEnvironment }, { postgresControl }, { busSettings }] =
    await Promise.all([
      import('../sidecar/logger.js'),
      import('../sidecar/create-sidecar.js'),
      import('./postgres-control.js'),
      import('../config/bus-settings.js'),
    ]);
  const bus = busSettings(config);
  const log = createLogger(config.log.level === 'info' ? 'warn' : config.log.level);
  const fault = faultFromEnvironment(config);
  // With bus, the replicas are reached through their agents.
  const wiring = bus
    ? await (await import('./bus-migrate-wiring.js')).busMigrateWiring(config, bus, log, fault)
    : { ...postgresControl(config, fault), close: async () => undefined };
  return { log, fault, wiring };
}

const configOption = [
  '-c, --config <file>',
  'configuration file (JSON or YAML); LOCKSTEP_* variables override it',
] as const;
const jsonOption = ['--json', 'machine-readable output (errors too)'] as const;

/** doctor, attach and run. */
function setupCommands(program: Command): void {
  program
    .command('doctor')
    .description('check prerequisites on all nodes; print each problem and warning with its fix')
    .option(...configOption)
    .option(...jsonOption)
    .action(async (flags: { config?: string; json?: boolean }) => {
      const { doctorCommand } = await import('./doctor-command.js');
      process.exitCode = await doctorCommand(flags);
    });

  program
    .command('attach')
    .description('doctor, control schema, publication, slot, initial copy to replicas')
    .option(...configOption)
    .option(
      '--resync <replica...>',
      'copy these (stale) replicas anew from a fresh snapshot, stopping lockstep run first; all: every replica from a new slot (after a lost slot)',
    )
    .option(
      '--create-schema',
      "create replicated tables missing on replicas from the primary's definitions",
    )
    .option('--copy-concurrency <n>', 'table copies at once (default 4)', positiveInt)
    .action(async (options: AttachCommandOptions) => {
      const config = loadConfig(options.config);
      const [{ AttachRefused, attach }, { attachProgressView }, { postgresCluster }] =
        await Promise.all([
          import('../attach/attach.js'),
          import('./attach-progress-view.js'),
          import('../../adapters/postgres/setup/postgres-setup.js'),
        ]);
      try {
        const result = await attach(postgresCluster(config), config, attachProgressView(), {
          resync: options.resync,
          createSchema: options.createSchema,
          copyConcurrency: options.copyConcurrency,
        });
        if (result.alreadyAttached) {
          process.stdout.write(
            `already attached (slot "${config.slot}" from ${result.startLsn}); nothing to do\n`,
          );
          return;
        }
        const rows = result.copied.reduce((sum, c) => sum + c.rows, 0);
        process.stdout.write(
          `attached: ${result.copied.length} table copies, ${rows.toLocaleString('en')} rows, ` +
            `to ${config.replicas.length} replica(s) in ${result.seconds.toFixed(1)} s; stream starts at ${result.startLsn}\n`,
        );
      } catch (error) {
        if (error instanceof AttachRefused) {
          printProblems(error.problems);
          process.stderr.write(
            `attach refused: fix the ${error.problems.length} problem(s) above (nothing was changed)\n`,
          );
          process.exitCode = exitCodeForProblems(error.problems);
          return;
        }
        throw error;
      }
    });

  program
    .command('run')
    .description(
      'the sidecar: stream, apply to every replica, confirm the slot; SIGTERM/SIGINT stop it cleanly',
    )
    .option(...configOption)
    .action(async (flags: { config?: string }) => {
      const { runSidecar } = await import('./run-command.js');
      await runSidecar(flags.config, packageVersion());
    });
}

/** agent: one replica's packets from the bus. */
function agentCommand(program: Command): void {
  program
    .command('agent')
    .description(
      "with bus: apply one replica's packets from JetStream, beside that replica; SIGTERM/SIGINT stop it",
    )
    .option(...configOption)
    .requiredOption('--replica <name>', 'the configured replica this agent applies to')
    .action(async (flags: { config?: string; replica: string }) => {
      const { runAgent } = await import('./agent-command.js');
      await runAgent(flags);
    });
}

/** migrate and exec: two-phase rounds with the primary in them. */
function migrationCommands(program: Command): void {
  program
    .command('migrate')
    .description(
      "run the project's migrations as two-phase rounds: on the primary and every replica, or on none",
    )
    .addArgument(new Argument('<action>', 'up | down | status').choices(['up', 'down', 'status']))
    .option(...configOption)
    .option(
      '--dir <folder>',
      'the migrations folder (.sql files and Kysely modules)',
      './migrations',
    )
    .option('--to <name>', 'up: stop after this migration')
    .option(
      '--dry-run',
      "prepare everywhere and roll back: report every node's vote, change nothing",
    )
    .option('--json', 'status: machine-readable output')
    .action(async (action: 'up' | 'down' | 'status', flags: MigrateFlags) => {
      const config = loadConfig(flags.config);
      if (action === 'status') {
        const { migrateStatusCommand } = await import('./migrate-status-command.js');
        process.exitCode = await migrateStatusCommand(config, flags);
        return;
      }
      if (flags.json) throw new UsageError('--json goes with migrate status only');
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const { migrateDown, migrateUp } = await import('../migrate/run-migrate.js');
      const common = {
        dir: flags.dir,
        to: flags.to,
        dryRun: flags.dryRun,
        ...(await roundTooling(config)),
      };
      try {
        const ok = await (action === 'up' ? migrateUp : migrateDown)(config, common, out);
        process.exitCode = ok ? ExitCode.ok : ExitCode.problems;
      } finally {
        await common.wiring.close();
      }
    });

  program
    .command('exec')
    .description('one SQL statement on the primary and every replica, two-phase')
    .option(...configOption)
    .requiredOption('--sql <statement>', 'the statement')
    .option('--dry-run', "prepare everywhere and roll back: report every node's vote")
    .action(async (options: { config?: string; sql: string; dryRun?: boolean }) => {
      const config = loadConfig(options.config);
      const { execStatement } = await import('../migrate/run-migrate.js');
      const tooling = await roundTooling(config);
      try {
        const ok = await execStatement(
          config,
          options.sql,
          { dryRun: options.dryRun, ...tooling },
          (line) => process.stdout.write(`${line}\n`),
        );
        process.exitCode = ok ? ExitCode.ok : ExitCode.problems;
      } finally {
        await tooling.wiring.close();
      }
    });
}

/** recover, detach, pause and resume. */
function streamCommands(program: Command): void {
  program
    .command('recover')
    .description(
      'resolve in-doubt prepared transactions by the decision log (no decision: roll back)',
    )
    .option(...configOption)
    .option(...jsonOption)
    .action(async (flags: { config?: string; json?: boolean }) => {
      const { recoverCommand } = await import('./recover-command.js');
      process.exitCode = await recoverCommand(flags);
    });

  program
    .command('detach')
    .description(
      'drop the slot, publication and DDL trigger; keep all data and history (refused while a sidecar runs)',
    )
    .option(...configOption)
    .option(
      '--force',
      'detach even while a sidecar runs (its stream ends) or transactions are prepared',
    )
    .option(...jsonOption)
    .action(async (flags: { config?: string; force?: boolean; json?: boolean }) => {
      const { detachCommand } = await import('./detach-command.js');
      process.exitCode = await detachCommand(flags);
    });

  for (const [name, paused, description] of [
    [
      'pause',
      true,
      'pause replication: the sidecar ends its stream and keeps its replica connections; the slot keeps WAL until resume',
    ],
    [
      'resume',
      false,
      'resume paused replication: the sidecar streams again from the lowest replica position',
    ],
  ] as const) {
    program
      .command(name)
      .description(description)
      .option(...configOption)
      .option(...jsonOption)
      .action(async (flags: { config?: string; json?: boolean }) => {
        const { pauseCommand } = await import('./pause-command.js');
        process.exitCode = await pauseCommand(flags, paused);
      });
  }
}

/** status, wait and demo. */
function statusCommands(program: Command): void {
  program
    .command('status')
    .description(
      'per node: version, lsn, lag, state, last error; in-doubt transactions (exit 1: a replica halted, stale or unresponsive)',
    )
    .option(...configOption)
    .option(...jsonOption)
    .option(
      '--watch',
      'a live view until Ctrl-C: redrawn on a terminal, a line per refresh otherwise',
    )
    .addOption(
      new Option(
        '--interval <seconds>',
        'with --watch: seconds between refreshes (default 2)',
      ).argParser(positiveNumber),
    )
    .action(async (flags: StatusFlags) => {
      const { statusCommand } = await import('./status-command.js');
      process.exitCode = await statusCommand(flags);
    });

  program
    .command('wait')
    .description(
      'exit 0 once every (or each --replica) replica applied a primary LSN or stream version (read-your-writes); 1 on timeout',
    )
    .option(...configOption)
    .option(
      '--lsn <lsn>',
      'a primary LSN, e.g. from SELECT pg_current_wal_insert_lsn() after a commit',
    )
    .option('--version <n>', 'a stream version (status --json: primary.version)')
    .option('--replica <name...>', 'only these replicas')
    .addOption(
      new Option('--timeout <seconds>', 'give up after this long (exit 1)')
        .argParser(positiveNumber)
        .default(60),
    )
    .option(...jsonOption)
    .action(async (flags: WaitFlags) => {
      const { waitCommand } = await import('./wait-command.js');
      process.exitCode = await waitCommand(flags);
    });

  program
    .command('demo')
    .description(
      'embedded primary and two replicas, a workload, live status; Ctrl-C stops and removes everything',
    )
    .option('--seconds <n>', 'stop by itself after n seconds', (v) => Number(v))
    .action(async (options: { seconds?: number }) => {
      const { runDemo } = await import('../demo/run-demo.js');
      const identical = await runDemo({ seconds: options.seconds });
      process.exitCode = identical ? 0 : 1;
    });
}

/** Builds the `lockstep` command line. */
export function buildProgram(): Command {
  const pkg = JSON.parse(readFileSync(packageJsonPath(), 'utf8')) as { version: string };
  const program = new Command('lockstep')
    .description(
      'Keeps replica PostgreSQL databases in step with a primary: versioned packets from logical ' +
        'replication, deltas for replicas that fall behind, two-phase commit across replicas.',
    )
    .version(pkg.version)
    // Root options only before a command: `wait --version V` is wait's own flag.
    .enablePositionalOptions()
    .showHelpAfterError()
    // Usage errors become exit 2 (reportFailure); with --json the error is printed as JSON instead.
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => {
        if (!jsonRequested()) write(text);
      },
      writeErr: (text) => {
        if (!jsonRequested()) process.stderr.write(text);
      },
    });

  for (const register of [
    setupCommands,
    agentCommand,
    migrationCommands,
    streamCommands,
    statusCommands,
  ])
    register(program);
  return program;
}

await buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => reportFailure(error));

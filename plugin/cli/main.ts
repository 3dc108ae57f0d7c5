#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { LockstepConfig } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import { printProblems, reportFailure } from './cli-output.js';

/** lockstep's package.json, found from this file whether it runs from source or from dist/. */
function packageJsonPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir)
    dir = path.dirname(dir);
  return path.join(dir, 'package.json');
}

/** Log and fault hook of a command that runs rounds itself (migrate, exec): its own output is the report. */
async function roundTooling(config: LockstepConfig) {
  const [{ createLogger }, { faultFromEnvironment }] = await Promise.all([
    import('../sidecar/logger.js'),
    import('../sidecar/create-sidecar.js'),
  ]);
  return {
    log: createLogger(config.log.level === 'info' ? 'warn' : config.log.level),
    fault: faultFromEnvironment(config),
  };
}

/** `pause` and `resume` (the primary's control schema upgraded if it predates pause). */
async function changePause(config: LockstepConfig, paused: boolean) {
  const [{ migrateControlSchema }, { setReplicationPaused }] = await Promise.all([
    import('../../adapters/postgres/control-schema.js'),
    import('../attach/pause-replication.js'),
  ]);
  return setReplicationPaused(config, paused, () =>
    migrateControlSchema('primary', config.primary),
  );
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
    .showHelpAfterError();

  const configOption = [
    '-c, --config <file>',
    'configuration file (JSON or YAML); LOCKSTEP_* variables override it',
  ] as const;

  program
    .command('doctor')
    .description('check prerequisites on all nodes; print each problem with its fix')
    .option(...configOption)
    .action(async (options: { config?: string }) => {
      const config = loadConfig(options.config);
      const { runDoctor } = await import('../attach/doctor.js');
      const report = await runDoctor(config);
      if (report.problems.length > 0) {
        printProblems(report.problems);
        process.stderr.write(`${report.problems.length} problem(s) found\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(
        `✓ all nodes ready: primary and ${config.replicas.length} replica(s), ${report.tables.length} table(s) to replicate\n`,
      );
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
    .action(async (options: { config?: string; resync?: string[]; createSchema?: boolean }) => {
      const config = loadConfig(options.config);
      const [{ AttachRefused, attach }, { attachProgressView }] = await Promise.all([
        import('../attach/attach.js'),
        import('./attach-progress-view.js'),
      ]);
      try {
        const result = await attach(config, attachProgressView(), {
          resync: options.resync,
          createSchema: options.createSchema,
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
          process.exitCode = 1;
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
    .action(async (options: { config?: string }) => {
      const { runSidecar } = await import('./run-command.js');
      await runSidecar(options.config);
    });

  program
    .command('migrate')
    .description(
      "run the project's migrations as two-phase rounds: on the primary and every replica, or on none",
    )
    .argument('<action>', 'up | down | status')
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
    .action(
      async (
        action: string,
        options: { config?: string; dir: string; to?: string; dryRun?: boolean },
      ) => {
        const config = loadConfig(options.config);
        const out = (line: string) => process.stdout.write(`${line}\n`);
        const { migrateDown, migrateStatus, migrateUp } = await import('../migrate/run-migrate.js');
        const common = {
          dir: options.dir,
          to: options.to,
          dryRun: options.dryRun,
          ...(await roundTooling(config)),
        };
        let ok: boolean;
        if (action === 'up') ok = await migrateUp(config, common, out);
        else if (action === 'down') ok = await migrateDown(config, common, out);
        else if (action === 'status') ok = await migrateStatus(config, options.dir, out);
        else {
          process.stderr.write(`unknown migrate action "${action}": use up, down or status\n`);
          ok = false;
        }
        process.exitCode = ok ? 0 : 1;
      },
    );

  program
    .command('exec')
    .description('one SQL statement on the primary and every replica, two-phase')
    .option(...configOption)
    .requiredOption('--sql <statement>', 'the statement')
    .option('--dry-run', "prepare everywhere and roll back: report every node's vote")
    .action(async (options: { config?: string; sql: string; dryRun?: boolean }) => {
      const config = loadConfig(options.config);
      const { execStatement } = await import('../migrate/run-migrate.js');
      const ok = await execStatement(
        config,
        options.sql,
        {
          dryRun: options.dryRun,
          ...(await roundTooling(config)),
        },
        (line) => process.stdout.write(`${line}\n`),
      );
      process.exitCode = ok ? 0 : 1;
    });

  program
    .command('recover')
    .description(
      'resolve in-doubt prepared transactions by the decision log (no decision: roll back)',
    )
    .option(...configOption)
    .action(async (options: { config?: string }) => {
      const config = loadConfig(options.config);
      const { runRecovery } = await import('../coordinator/run-recovery.js');
      const report = await runRecovery(config);
      for (const r of report.resolved) {
        process.stdout.write(
          `${r.node}: ${r.action === 'committed' ? 'committed' : 'rolled back'} ${r.gid} (prepared ${Math.round(r.ageSeconds)}s ago; ${r.action === 'committed' ? 'a commit decision is recorded' : 'no commit decision'})\n`,
        );
      }
      for (const f of report.failed) process.stderr.write(`${f.node}: not recovered: ${f.error}\n`);
      if (report.resolved.length === 0 && report.failed.length === 0)
        process.stdout.write(
          'nothing to recover: no lockstep transaction is prepared on any node\n',
        );
      process.exitCode = report.failed.length > 0 ? 1 : 0;
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
    .action(async (options: { config?: string; force?: boolean }) => {
      const config = loadConfig(options.config);
      const { detach } = await import('../attach/detach.js');
      const result = await detach(config, options.force === true);
      process.stdout.write(
        `detached: slot "${config.slot}" ${result.slotDropped ? 'dropped' : 'was already gone'}, publication "${config.publication}" ${result.publicationDropped ? 'dropped' : 'was already gone'}; positions forgotten on ${result.replicasReset.join(', ') || 'no replica'}; all data kept\n`,
      );
    });

  program
    .command('pause')
    .description(
      'pause replication: the sidecar ends its stream and keeps its replica connections; the slot keeps WAL until resume',
    )
    .option(...configOption)
    .action(async (options: { config?: string }) => {
      const config = loadConfig(options.config);
      const result = await changePause(config, true);
      const since = result.pausedSince?.toISOString();
      const keeps = 'the slot keeps WAL from the lowest replica position until lockstep resume';
      if (!result.sidecarRunning)
        process.stdout.write(
          `paused since ${since}: no sidecar runs now; one started stays paused; ${keeps}\n`,
        );
      else if (result.released)
        process.stdout.write(
          `paused since ${since}: the sidecar stopped streaming, replicas stay where they are; ${keeps}\n`,
        );
      else {
        process.stderr.write(
          `paused since ${since} (recorded), but the running sidecar still streams after 10 s: is it an older lockstep? Restart it and it stays paused\n`,
        );
        process.exitCode = 1;
      }
    });

  program
    .command('resume')
    .description(
      'resume paused replication: the sidecar streams again from the lowest replica position',
    )
    .option(...configOption)
    .action(async (options: { config?: string }) => {
      const config = loadConfig(options.config);
      const result = await changePause(config, false);
      const runs = result.sidecarRunning
        ? 'the sidecar streams again from the lowest replica position'
        : 'no sidecar runs now: start lockstep run';
      process.stdout.write(
        result.wasPaused ? `resumed: ${runs}\n` : `not paused: nothing to resume (${runs})\n`,
      );
    });

  program
    .command('status')
    .description('per node: version, lsn, lag, state, last error; in-doubt transactions')
    .option(...configOption)
    .option('--json', 'machine-readable output')
    .action(async (options: { config?: string; json?: boolean }) => {
      const config = loadConfig(options.config);
      const [{ readStatus }, { formatStatus }] = await Promise.all([
        import('../status/read-status.js'),
        import('./status-view.js'),
      ]);
      const status = await readStatus(config);
      process.stdout.write(
        options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status),
      );
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

  return program;
}

await buildProgram().parseAsync(process.argv).catch(reportFailure);

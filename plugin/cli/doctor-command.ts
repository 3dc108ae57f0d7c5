import { loadConfig } from '../config/load-config.js';
import { printJson, printProblems, problemJson } from './cli-output.js';
import { type ExitCode, exitCodeForProblems } from './exit-codes.js';

/**
 * `lockstep doctor`: every problem (exit 1; 3 when a node is unreachable) and
 * every warning (no effect on the exit code), each with its fix.
 */
export async function doctorCommand(flags: { config?: string; json?: boolean }): Promise<ExitCode> {
  const config = loadConfig(flags.config);
  const [{ runDoctor }, { postgresCluster }] = await Promise.all([
    import('../attach/doctor.js'),
    import('../../adapters/postgres/setup/postgres-setup.js'),
  ]);
  const report = await runDoctor(postgresCluster(config), config);
  const code = exitCodeForProblems(report.problems);
  if (flags.json) {
    printJson({
      ok: report.problems.length === 0,
      problems: report.problems.map(problemJson),
      warnings: report.warnings.map(problemJson),
      tables: report.tables.map((t) => `${t.schema}.${t.name}`),
    });
    return code;
  }
  printProblems(report.problems);
  for (const w of report.warnings) process.stderr.write(`! warning: ${w.message}\n`);
  if (report.problems.length > 0) {
    process.stderr.write(`${report.problems.length} problem(s) found\n`);
    return code;
  }
  process.stdout.write(
    `✓ all nodes ready: primary and ${config.replicas.length} replica(s), ${report.tables.length} table(s) to replicate${report.warnings.length ? `; ${report.warnings.length} warning(s) above` : ''}\n`,
  );
  return code;
}

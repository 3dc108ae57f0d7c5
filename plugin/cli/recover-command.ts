import { loadConfig } from '../config/load-config.js';
import { printJson } from './cli-output.js';
import { ExitCode } from './exit-codes.js';

/**
 * `lockstep recover`: exit 0 when nothing is left prepared, 1 when a node
 * could not be finished, 3 when one could not be reached. `--json`:
 * `resolved[]` and `failed[]` by `node` and `gid`, as `status --json`'s `inDoubt[]`.
 */
export async function recoverCommand(flags: {
  config?: string;
  json?: boolean;
}): Promise<ExitCode> {
  const config = loadConfig(flags.config);
  const [{ runRecovery }, { postgresControl }] = await Promise.all([
    import('../coordinator/run-recovery.js'),
    import('./postgres-control.js'),
  ]);
  const report = await runRecovery(config, postgresControl(config));
  const code = report.failed.some((f) => f.unreachable)
    ? ExitCode.unreachable
    : report.failed.length > 0
      ? ExitCode.problems
      : ExitCode.ok;
  if (flags.json) {
    printJson(report);
    return code;
  }
  for (const r of report.resolved) {
    const committed = r.action === 'committed';
    process.stdout.write(
      `${r.node}: ${committed ? 'committed' : 'rolled back'} ${r.gid} (prepared ${Math.round(r.ageSeconds)}s ago; ${committed ? 'a commit decision is recorded' : 'no commit decision'})\n`,
    );
  }
  for (const f of report.failed) process.stderr.write(`${f.node}: not recovered: ${f.error}\n`);
  // Housekeeping only: nothing is left prepared because of it, so the exit code does not change.
  if (report.pruneFailed) process.stderr.write(`primary: warning: ${report.pruneFailed}\n`);
  if (report.resolved.length === 0 && report.failed.length === 0)
    process.stdout.write('nothing to recover: no lockstep transaction is prepared on any node\n');
  return code;
}

import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** What the bundle is built from: a newer file here means it no longer runs these sources. */
const SOURCES = [
  'plugin',
  'adapters',
  'migrations',
  'scripts/bundle-cli.ts',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
];

/** The newest modification time of `entry` and, for a folder, of every file below it. */
function newestMtime(entry: string): number {
  const stat = statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(entry).reduce(
    (newest, name) => Math.max(newest, newestMtime(path.join(entry, name))),
    stat.mtimeMs,
  );
}

/**
 * The node arguments that start the CLI: from source through tsx, or the
 * built CLI `LOCKSTEP_TEST_CLI` names (CI: the bundle `npm ci` built from
 * the same sources, which starts each command ~0.9 s sooner than tsx). A
 * bundle older than a source file is refused: it would test other code.
 */
export function defaultCliEntry(): readonly string[] {
  const built = process.env.LOCKSTEP_TEST_CLI;
  if (!built) return ['--import', 'tsx', 'plugin/cli/main.ts'];
  if (!existsSync(built))
    throw new Error(`LOCKSTEP_TEST_CLI=${built} does not exist: run \`npm run build\` first`);
  const stale = SOURCES.filter((s) => existsSync(s) && newestMtime(s) > statSync(built).mtimeMs);
  if (stale.length > 0)
    throw new Error(
      `LOCKSTEP_TEST_CLI=${built} is older than ${stale.join(', ')}: run \`npm run build\` again, or unset it to run the sources`,
    );
  return [built];
}

/**
 * Bundles the CLI (plugin/cli/main.ts and all it imports, with Kysely and
 * zod) into one ES module, dist/lockstep.mjs: the `bin` users run. Node
 * loading ~190 of our modules and ~360 of Kysely's and zod's files was most
 * of a command's start-up; one file starts `lockstep run` ~40 % sooner.
 * Every other package stays a separate import (native bindings, worker
 * files, optional dependencies); it is read from the sources, so the build
 * needs no `tsc` output. `npm run build` calls it; tests call bundleCli.
 */
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(import.meta.dirname, '..');
/** Bundled: pure ES modules of many small files, which is where loading time went. */
const BUNDLED = new Set(['kysely', 'zod']);

/** The packages left as imports: every dependency but those bundled, and what they load optionally. */
function externalPackages(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >;
  const names = [
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
    'tsx', // migration-files.ts imports it for .ts migrations, from the project's own install
    'pg-native', // pg's optional native binding
  ].filter((name) => !BUNDLED.has(name));
  return names.flatMap((name) => [name, `${name}/*`]);
}

/** Writes the bundle to `outfile` (next to package.json's folder or below it: version lookup). */
export async function bundleCli(outfile: string): Promise<void> {
  await build({
    entryPoints: [path.join(ROOT, 'plugin/cli/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: externalPackages(),
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}

// Run as a script (argv[1] may reach this file through a symlink), not imported by a test.
const invoked = process.argv[1] ? realpathSync(process.argv[1]) : '';
if (invoked === realpathSync(import.meta.filename))
  await bundleCli(path.join(ROOT, 'dist/lockstep.mjs'));

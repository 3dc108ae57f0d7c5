/**
 * Bundles the CLI (plugin/cli/main.ts and all it imports, with every
 * dependency written in plain JavaScript) into one ES module,
 * dist/lockstep.mjs: the `bin` users run. Node loading ~190 of our modules
 * and ~360 of Kysely's and zod's files was most of a command's start-up;
 * one file starts `lockstep run` ~40 % sooner. pg, pino, prom-client, yaml,
 * commander and the NATS client were left as imports until their ~600 files
 * cost ~0.15 s of CPU per command as well (`--help` 0.52 → 0.36 s,
 * `status` 0.33 → 0.27 s). What stays an import is optional or
 * native (below); the bundle reads the sources, so the build needs no `tsc`
 * output. `npm run build` calls it; tests call bundleCli.
 */
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(import.meta.dirname, '..');

/**
 * Left as imports: the optional dependencies (the demo's embedded PostgreSQL,
 * pino-pretty: absent from the image), what pg loads only when asked (its
 * native binding, its Cloudflare socket), and tsx, which .ts migrations are
 * loaded with from the project's own install.
 */
function externalPackages(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >;
  const names = [
    ...Object.keys(pkg.optionalDependencies ?? {}),
    'tsx',
    'pg-native',
    'pg-cloudflare',
  ];
  return [...names.flatMap((name) => [name, `${name}/*`]), 'cloudflare:sockets'];
}

/**
 * Bundled CommonJS packages (pg, pino, prom-client, commander) call
 * `require` for Node's own modules: an ES module has none, so the bundle
 * makes one.
 */
const REQUIRE_BANNER =
  "import { createRequire as lockstepCreateRequire } from 'node:module';\n" +
  'const require = lockstepCreateRequire(import.meta.url);';

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
    banner: { js: REQUIRE_BANNER },
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}

// Run as a script (argv[1] may reach this file through a symlink), not imported by a test.
const invoked = process.argv[1] ? realpathSync(process.argv[1]) : '';
if (invoked === realpathSync(import.meta.filename))
  await bundleCli(path.join(ROOT, 'dist/lockstep.mjs'));

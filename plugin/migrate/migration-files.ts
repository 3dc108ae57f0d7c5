import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LockstepError } from '../ports/lockstep-error.js';
import type { MigrationStep } from '../ports/migration-session.js';
import { unsafeStatement } from './transaction-safety.js';

export type { MigrationStep } from '../ports/migration-session.js';

/** A migration of the user's project. */
export interface MigrationFile {
  /** File name without its extension; the order and the history key. */
  readonly name: string;
  readonly file: string;
  /** sha256 of the file's bytes: an applied migration whose file changed is refused. */
  readonly checksum: string;
  readonly up: MigrationStep;
  /** Null when the migration has no down part. */
  readonly down: MigrationStep | null;
}

/** In a `.sql` migration, the line that starts its down part. */
export const DOWN_MARKER = /^[ \t]*--[ \t]*lockstep:down[ \t]*$/m;

const EXTENSIONS = ['.sql', '.js', '.mjs', '.ts'];

/** The SQL as a step, refused before any node is touched when it cannot run in a prepared transaction. */
export function sqlStep(sql: string, where: string): MigrationStep {
  const unsafe = unsafeStatement(sql);
  if (unsafe) {
    throw new LockstepError({
      node: 'primary',
      problem: `${where}: "${unsafe.statement}" cannot run in a two-phase migration`,
      fix: unsafe.alternative,
    });
  }
  const step = async (connection: Parameters<MigrationStep>[0]) => {
    await connection.query(sql);
  };
  return Object.assign(step, { sql });
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  if (file.endsWith('.ts')) {
    // TypeScript migrations need tsx (a devDependency of most TypeScript projects).
    const { tsImport } = (await import('tsx/esm/api').catch(() => {
      throw new LockstepError({
        node: 'primary',
        problem: `${file} is TypeScript and tsx is not installed`,
        fix: 'npm install --save-dev tsx, or compile the migration to .js',
      });
    })) as { tsImport(url: string, parent: string): Promise<Record<string, unknown>> };
    return tsImport(pathToFileURL(file).href, import.meta.url);
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/**
 * Reads a project's migrations folder, ordered by name: `.sql` files (the
 * part after a `-- lockstep:down` line is the down migration) and Kysely
 * modules exporting `up(db)` and optionally `down(db)`.
 */
export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  if (!existsSync(dir)) {
    throw new LockstepError({
      node: 'primary',
      problem: `the migrations folder ${dir} does not exist`,
      fix: 'create it, or pass --dir with your migrations folder',
    });
  }
  const files = readdirSync(dir)
    .filter((f) => EXTENSIONS.includes(path.extname(f)) && !f.endsWith('.d.ts'))
    .sort();
  const out: MigrationFile[] = [];
  for (const f of files) {
    const file = path.resolve(dir, f);
    const bytes = readFileSync(file);
    const name = f.slice(0, -path.extname(f).length);
    const checksum = createHash('sha256').update(bytes).digest('hex');
    if (f.endsWith('.sql')) {
      const [up = '', down] = bytes.toString('utf8').split(DOWN_MARKER);
      out.push({
        name,
        file,
        checksum,
        up: sqlStep(up, f),
        down: down?.trim() ? sqlStep(down, `${f} (down)`) : null,
      });
      continue;
    }
    const module = await importModule(file);
    const up = module.up;
    const down = module.down;
    if (typeof up !== 'function') {
      throw new LockstepError({
        node: 'primary',
        problem: `${f} exports no up(db) function`,
        fix: 'export async function up(db: Kysely<any>) (and optionally down) from the module',
      });
    }
    const asStep =
      (fn: (db: unknown) => Promise<void>): MigrationStep =>
      async (connection) => {
        await fn(connection.kysely());
      };
    out.push({
      name,
      file,
      checksum,
      up: asStep(up as (db: unknown) => Promise<void>),
      down: typeof down === 'function' ? asStep(down as (db: unknown) => Promise<void>) : null,
    });
  }
  return out;
}

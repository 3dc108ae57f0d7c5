import type pg from 'pg';
import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import {
  DDL_EVENT_TRIGGER,
  installDdlCapture,
  removeDdlCapture,
} from '../../adapters/postgres/setup/ddl-capture.js';
import type { CatalogTable } from '../../adapters/postgres/setup/table-catalog.js';
import { ensurePublication } from '../../adapters/postgres/source/replication-slot.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { CONTROL_EVENTS_TABLE, type Lsn, wholeSchemas } from '../protocol/index.js';

/** The stream as attach finds it: attached (its set is fixed) or to be set up from the configuration. */
export interface StreamTables {
  /** The stream has its start recorded: the publication and the capture are left as they are. */
  readonly attached: boolean;
  /** The tables to copy: attached, those the stream publishes; else the configured ones. */
  readonly tables: readonly CatalogTable[];
}

const key = (schema: string, name: string) => `${schema}.${name}`;
const sameSet = (a: readonly string[], b: readonly string[]) =>
  JSON.stringify([...new Set(a)].sort()) === JSON.stringify([...new Set(b)].sort());

/**
 * On an attached stream, refuses a configuration whose replicated set
 * (`tables`, `twoPhase.captureDdl`) differs from the one the stream was
 * attached with: attach must never change the publication or the DDL
 * capture under a running stream (a replica added with another
 * configuration would change what every replica receives). A stream
 * attached before the set was recorded is compared by its publication and
 * capture, and recorded when they agree. Returns what to copy.
 */
export async function streamTables(
  config: LockstepConfig,
  configured: readonly CatalogTable[],
  startOver: boolean,
): Promise<StreamTables> {
  const primary = await connectNode('primary', config.primary);
  try {
    const { rows } = await primary.query<{ tables: string[] | null; capture: boolean | null }>(
      'SELECT tables, capture_ddl AS capture FROM lockstep.streams WHERE stream = $1',
      [config.slot],
    );
    const row = rows[0];
    if (!row || startOver) return { attached: false, tables: configured };
    const published = await publishedTables(primary, config.publication);
    const differences =
      row.tables === null
        ? await legacyDifferences(primary, config, configured, published)
        : recordedDifferences(config, row.tables, row.capture === true);
    if (differences.length > 0) throw differentSet(config, differences);
    if (row.tables === null)
      await primary.query(
        'UPDATE lockstep.streams SET tables = $2::jsonb, capture_ddl = $3 WHERE stream = $1',
        [config.slot, JSON.stringify(config.tables), config.twoPhase.captureDdl],
      );
    // A table created since (without captured DDL) matches the patterns but is not streamed.
    return {
      attached: true,
      tables: configured.filter((t) => published.has(key(t.schema, t.name))),
    };
  } finally {
    await primary.end();
  }
}

/**
 * A stream not attached yet (or started over): its publication and DDL
 * capture as the configuration says. Captured DDL: whole-schema patterns
 * publish their schemas, so tables created later stream at once.
 */
export async function setUpPublication(
  primary: pg.ClientBase,
  config: LockstepConfig,
  tables: readonly CatalogTable[],
  step: (message: string) => void,
): Promise<void> {
  const schemas = config.twoPhase.captureDdl ? wholeSchemas(config.tables) : [];
  await ensurePublication(primary, config.publication, tables, schemas);
  if (config.twoPhase.captureDdl) {
    step('installing the DDL capture (event trigger lockstep_capture_ddl)');
    await installDdlCapture(primary);
  } else {
    await removeDdlCapture(primary);
  }
}

/** Records the stream at its new slot's start, with the replicated set it is attached with. */
export async function recordStream(
  primary: pg.ClientBase,
  config: LockstepConfig,
  startLsn: Lsn,
): Promise<void> {
  await primary.query(
    `INSERT INTO lockstep.streams (stream, slot, publication, start_lsn, tables, capture_ddl)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6)
     ON CONFLICT (stream) DO UPDATE SET slot = excluded.slot, publication = excluded.publication,
       start_lsn = excluded.start_lsn, attached_at = now(), version = 0, lsn = NULL,
       tables = excluded.tables, capture_ddl = excluded.capture_ddl`,
    [
      config.slot,
      config.slot,
      config.publication,
      startLsn,
      JSON.stringify(config.tables),
      config.twoPhase.captureDdl,
    ],
  );
}

/** What differs between the recorded set and the configuration, as `key: was → is`. */
function recordedDifferences(
  config: LockstepConfig,
  tables: readonly string[],
  capture: boolean,
): Array<{ key: string; what: string }> {
  const differences: Array<{ key: string; what: string }> = [];
  if (!sameSet(tables, config.tables))
    differences.push({
      key: 'tables',
      what: `tables: attached with ${JSON.stringify(tables)}, this configuration has ${JSON.stringify(config.tables)}`,
    });
  if (capture !== config.twoPhase.captureDdl)
    differences.push({
      key: 'twoPhase.captureDdl',
      what: `twoPhase.captureDdl: attached with ${capture}, this configuration has ${config.twoPhase.captureDdl}`,
    });
  return differences;
}

/** Attached before the set was recorded: the publication and the capture as they are. */
async function legacyDifferences(
  primary: pg.ClientBase,
  config: LockstepConfig,
  configured: readonly CatalogTable[],
  published: ReadonlySet<string>,
): Promise<Array<{ key: string; what: string }>> {
  const differences: Array<{ key: string; what: string }> = [];
  const wanted = configured.map((t) => key(t.schema, t.name));
  if (!sameSet(wanted, [...published])) {
    const missing = wanted.filter((t) => !published.has(t));
    const extra = [...published].filter((t) => !wanted.includes(t));
    differences.push({
      key: 'tables',
      what: `tables: the publication "${config.publication}" ${missing.length ? `lacks ${missing.slice(0, 5).join(', ')}` : ''}${missing.length && extra.length ? ' and ' : ''}${extra.length ? `has ${extra.slice(0, 5).join(', ')}, not configured` : ''}`,
    });
  }
  const { rowCount } = await primary.query('SELECT 1 FROM pg_event_trigger WHERE evtname = $1', [
    DDL_EVENT_TRIGGER,
  ]);
  if ((rowCount ?? 0) > 0 !== config.twoPhase.captureDdl)
    differences.push({
      key: 'twoPhase.captureDdl',
      what: `twoPhase.captureDdl: the DDL capture is ${rowCount ? 'installed' : 'not installed'}, this configuration has ${config.twoPhase.captureDdl}`,
    });
  return differences;
}

/** The tables the publication streams (lockstep's control-event table aside). */
async function publishedTables(primary: pg.ClientBase, publication: string): Promise<Set<string>> {
  const { rows } = await primary.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [publication],
  );
  const control = key(CONTROL_EVENTS_TABLE.schema, CONTROL_EVENTS_TABLE.name);
  return new Set(rows.map((r) => key(r.schemaname, r.tablename)).filter((t) => t !== control));
}

function differentSet(
  config: LockstepConfig,
  differences: ReadonlyArray<{ key: string; what: string }>,
): LockstepError {
  return new LockstepError({
    node: 'primary',
    setting: differences.map((d) => d.key).join(', '),
    problem: `stream "${config.slot}" is attached with another replicated set than this configuration names (${differences.map((d) => d.what).join('; ')}); attach does not change the publication or the DDL capture of an attached stream`,
    fix: 'run lockstep attach with the configuration the running sidecar uses; to change the replicated tables or captureDdl, run lockstep detach, then lockstep attach with the new configuration',
  });
}

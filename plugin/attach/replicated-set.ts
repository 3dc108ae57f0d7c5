import type { LockstepConfig } from '../config/config-schema.js';
import type { CatalogTable } from '../ports/catalog-table.js';
import type { LockstepCluster, PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { CONTROL_EVENTS_TABLE, type Lsn, wholeSchemas } from '../protocol/index.js';
import type { StepReporter } from './attach-progress.js';
import { watchedPrimarySession } from './node-step.js';

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
  cluster: LockstepCluster,
  config: LockstepConfig,
  configured: readonly CatalogTable[],
  startOver: boolean,
): Promise<StreamTables> {
  const primary = await cluster.primary(config.primary, watchedPrimarySession(config));
  try {
    const row = await primary.streams.replicatedSet(config.slot);
    if (!row || startOver) return { attached: false, tables: configured };
    const published = await publishedTables(primary, config.publication);
    const differences =
      row.tables === null
        ? await legacyDifferences(primary, config, configured, published)
        : recordedDifferences(config, row.tables, row.captureDdl === true);
    if (differences.length > 0) throw differentSet(config, differences);
    if (row.tables === null)
      await primary.streams.recordReplicatedSet(
        config.slot,
        config.tables,
        config.twoPhase.captureDdl,
      );
    // A table created since (without captured DDL) matches the patterns but is not streamed.
    return {
      attached: true,
      tables: configured.filter((t) => published.has(key(t.schema, t.name))),
    };
  } finally {
    await primary.close();
  }
}

/**
 * A stream not attached yet (or started over): its publication and DDL
 * capture as the configuration says. Captured DDL: whole-schema patterns
 * publish their schemas, so tables created later stream at once.
 */
export async function setUpPublication(
  primary: PrimarySession,
  config: LockstepConfig,
  tables: readonly CatalogTable[],
  step: StepReporter,
): Promise<void> {
  const schemas = config.twoPhase.captureDdl ? wholeSchemas(config.tables) : [];
  await primary.setup.ensurePublication(config.publication, tables, schemas);
  if (config.twoPhase.captureDdl) {
    step('installing the DDL capture', { eventTrigger: 'lockstep_capture_ddl' });
    await primary.setup.installDdlCapture();
  } else {
    await primary.setup.removeDdlCapture();
  }
}

/** Records the stream at its new slot's start, with the replicated set it is attached with. */
export async function recordStream(
  primary: PrimarySession,
  config: LockstepConfig,
  startLsn: Lsn,
): Promise<void> {
  await primary.streams.record(config.slot, {
    slot: config.slot,
    publication: config.publication,
    startLsn,
    tables: config.tables,
    captureDdl: config.twoPhase.captureDdl,
  });
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
  primary: PrimarySession,
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
  const installed = await primary.setup.ddlCaptureInstalled();
  if (installed !== config.twoPhase.captureDdl)
    differences.push({
      key: 'twoPhase.captureDdl',
      what: `twoPhase.captureDdl: the DDL capture is ${installed ? 'installed' : 'not installed'}, this configuration has ${config.twoPhase.captureDdl}`,
    });
  return differences;
}

/** The tables the publication streams (lockstep's control-event table aside). */
async function publishedTables(primary: PrimarySession, publication: string): Promise<Set<string>> {
  const rows = await primary.setup.publishedTables(publication);
  const control = key(CONTROL_EVENTS_TABLE.schema, CONTROL_EVENTS_TABLE.name);
  return new Set(rows.map((r) => key(r.schema, r.name)).filter((t) => t !== control));
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

import type pg from 'pg';
import type { TableCopyJob } from '../../../plugin/ports/cluster-setup.js';
import { quoteQualified } from '../sql-identifier.js';

/**
 * Share of a replica's shared_buffers the tables one attach copied there may
 * fill: the rest stays for the application's reads, the catalog and the
 * apply's own writes.
 */
const WARM_SHARE = 0.5;

/** A committed table's lock the warm-up waits for at most (the application's DDL, say). */
const WARM_LOCK_TIMEOUT = '1s';

/**
 * The blocks this table may still warm: WARM_SHARE of shared_buffers, less
 * the heap and indexes of every other table copied from the same snapshot
 * (same stream and copy LSN) and committed before this query. Each table
 * asks after its own commit, so of any two the later asker counts the
 * other: the tables of one attach never warm more than the share together,
 * whatever the copies' concurrency.
 */
const BUDGET = `
  SELECT floor(greatest(0, pg_size_bytes(current_setting('shared_buffers')) * $4::float8
           - coalesce(sum(pg_relation_size(c.oid) + pg_indexes_size(c.oid)), 0))
         / current_setting('block_size')::int)::bigint AS blocks
    FROM lockstep.synced_tables s
    JOIN pg_namespace n ON n.nspname = s.schema_name
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.table_name
   WHERE s.stream = $1 AND s.copy_lsn = $2::pg_lsn AND c.oid <> $3::regclass`;

/**
 * What to warm, first to last: the replica identity (or primary key) index,
 * which every UPDATE and DELETE the stream applies looks rows up in, then
 * the other indexes, smallest first, then the heap from its first block.
 * `keys` are an index's quoted key columns when an ordered index-only scan
 * can read it (a btree on plain columns, without a predicate).
 */
const PARTS = `
  SELECT i.indexrelid::regclass::text AS relation, true AS "isIndex",
         pg_relation_size(i.indexrelid) / current_setting('block_size')::int AS blocks,
         greatest(ic.reltuples, 0)::float8 AS tuples,
         CASE WHEN am.amname = 'btree' AND i.indpred IS NULL AND 0 <> ALL (i.indkey::int2[])
              THEN ARRAY(SELECT quote_ident(a.attname)
                           FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(num, ord)
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                          ORDER BY k.ord) END AS keys,
         i.indisreplident OR i.indisprimary AS identity,
         (SELECT greatest(0, pg_relation_size($1::regclass) / current_setting('block_size')::int
                             - relallvisible)
            FROM pg_class WHERE oid = $1::regclass) AS "heapNotVisible"
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
   WHERE i.indrelid = $1::regclass AND i.indisvalid
  UNION ALL
  SELECT $1::regclass::text, false, pg_relation_size($1::regclass) / current_setting('block_size')::int,
         0, NULL, false, NULL
   ORDER BY "isIndex" DESC, identity DESC, blocks`;

interface Part {
  relation: string;
  isIndex: boolean;
  blocks: string;
  tuples: number;
  keys: string[] | null;
  identity: boolean;
  /**
   * Heap blocks not all-visible (COPY FREEZE leaves a few: a page its batches
   * continued), which an index-only scan may also read.
   */
  heapNotVisible: string | null;
}

/**
 * Reads a freshly committed table into the replica's shared buffers (COPY,
 * index builds and ANALYZE all go around them), so the first changes applied
 * after attach find its blocks there, within the attach's budget (BUDGET).
 * With pg_prewarm installed in the database it reads each part's blocks;
 * without it (lockstep never installs it) the heap is read by a TID scan
 * (one tuple id per block) and the identity index by an index-only scan, both of which keep
 * what they read (a sequential scan of a large table would use a small
 * ring instead). The blocks warmed.
 */
export async function warmTable(client: pg.Client, job: TableCopyJob): Promise<number> {
  const table = quoteQualified(job.table.schema, job.table.name);
  await client.query('BEGIN READ ONLY');
  try {
    const warmed = await warmWithin(client, job, table);
    await client.query('COMMIT');
    return warmed;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The warm-up's reads, inside its read-only transaction. */
async function warmWithin(client: pg.Client, job: TableCopyJob, table: string): Promise<number> {
  // jit off: the disabled plans cost over jit_above_cost, and compiling each
  // query took ~1 s (attach +2 s on bench:replicate), the queries a few ms.
  await client.query(
    `SELECT set_config('lock_timeout', $1, true), set_config('enable_seqscan', 'off', true),
            set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true),
            set_config('max_parallel_workers_per_gather', '0', true), set_config('jit', 'off', true)`,
    [WARM_LOCK_TIMEOUT],
  );
  const { rows: budget } = await client.query<{ blocks: string }>(BUDGET, [
    job.stream,
    job.copyLsn,
    table,
    WARM_SHARE,
  ]);
  let left = Number(budget[0]?.blocks ?? 0);
  const prewarm = await prewarmFunction(client);
  const { rows: parts } = await client.query<Part>(PARTS, [table]);
  let warmed = 0;
  for (const part of parts) {
    // An index read without pg_prewarm also fetches the heap blocks not all-visible: its share holds them.
    const fetched = part.isIndex && prewarm === null ? Number(part.heapNotVisible ?? 0) : 0;
    const blocks = Math.min(Number(part.blocks) + fetched, left);
    if (blocks <= 0) continue;
    const read = await warmPart(client, table, part, blocks, prewarm);
    warmed += read;
    left -= read;
  }
  return warmed;
}

/** The schema-qualified pg_prewarm of the installed extension when this role may call it, else null. */
async function prewarmFunction(client: pg.Client): Promise<string | null> {
  const { rows } = await client.query<{ fn: string }>(
    `SELECT format('%I.%I', n.nspname, p.proname) AS fn
       FROM pg_extension e
       JOIN pg_depend d ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
        AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
       JOIN pg_proc p ON p.oid = d.objid
       JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE e.extname = 'pg_prewarm' AND p.proname = 'pg_prewarm' AND p.pronargs = 5
        AND has_function_privilege(p.oid, 'EXECUTE')`,
  );
  return rows[0]?.fn ?? null;
}

/** Reads the first `blocks` blocks of one part (about as many, for an index without pg_prewarm). */
async function warmPart(
  client: pg.Client,
  table: string,
  part: Part,
  blocks: number,
  prewarm: string | null,
): Promise<number> {
  if (prewarm !== null) {
    const { rows } = await client.query<{ read: string }>(
      `SELECT ${prewarm}($1::regclass, 'buffer', 'main', 0, $2) AS read`,
      [part.relation, blocks - 1],
    );
    return Number(rows[0]?.read ?? 0);
  }
  if (!part.isIndex) {
    // One tuple id per block: a TID scan reads each block once into shared buffers,
    // on any version (a TID range scan needs PostgreSQL 14), and visits one tuple a
    // block, not all. pgbench_accounts' 16394 blocks: 245 ms either way, the reads.
    await client.query(
      `SELECT count(*) FROM ${table}
        WHERE ctid = ANY (ARRAY(SELECT format('(%s,1)', b)::tid FROM generate_series(0, $1::bigint - 1) b))`,
      [blocks],
    );
    return blocks;
  }
  // Which index a plain scan uses is the planner's choice: only the identity index is aimed at.
  if (!part.identity || part.keys === null) return 0;
  // The heap blocks the scan may fetch count against the budget too.
  const fetched = Number(part.heapNotVisible ?? 0);
  const share = blocks - fetched;
  if (share <= 0) return 0;
  const whole = Number(part.blocks);
  const limit = share >= whole ? 'ALL' : String(Math.floor((part.tuples * share) / whole));
  await client.query(
    `SELECT count(*) FROM (SELECT ${part.keys.join(', ')} FROM ${table}
                            ORDER BY ${part.keys.join(', ')} LIMIT ${limit}) k`,
  );
  return blocks;
}

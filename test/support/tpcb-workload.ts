import pg from 'pg';

/** TPC-B-like tables (pgbench's shape), created identically on every node. */
export const TPCB_SCHEMA = `
  CREATE TABLE branches (bid int PRIMARY KEY, bbalance int NOT NULL, filler char(88));
  CREATE TABLE tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance int NOT NULL, filler char(84));
  CREATE TABLE accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
  CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamptz, filler char(22));
  ALTER TABLE history REPLICA IDENTITY FULL;
  CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());`;

/** Fills the primary: `branches` branches, 10 tellers and `accountsPerBranch` accounts each. */
export function tpcbSeed(branches: number, accountsPerBranch: number): string {
  return `
    INSERT INTO branches SELECT b, 0 FROM generate_series(1, ${branches}) b;
    INSERT INTO tellers SELECT t, (t - 1) / 10 + 1, 0 FROM generate_series(1, ${branches * 10}) t;
    INSERT INTO accounts SELECT a, (a - 1) / ${accountsPerBranch} + 1, 0 FROM generate_series(1, ${branches * accountsPerBranch}) a;`;
}

/** Counts of a finished workload. */
export interface WorkloadResult {
  transactions: number;
  failures: number;
}

/**
 * Runs TPC-B transactions from `clients` connections until `signal` aborts or
 * `ms` pass: the same five statements pgbench runs. Returns how many committed.
 */
export async function runTpcb(
  url: string,
  options: {
    clients: number;
    ms: number;
    branches: number;
    accountsPerBranch: number;
    signal?: AbortSignal;
  },
): Promise<WorkloadResult> {
  const deadline = Date.now() + options.ms;
  const result: WorkloadResult = { transactions: 0, failures: 0 };
  const accounts = options.branches * options.accountsPerBranch;
  const rand = (n: number) => 1 + Math.floor(Math.random() * n);
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      try {
        while (Date.now() < deadline && !options.signal?.aborted) {
          const aid = rand(accounts);
          const tid = rand(options.branches * 10);
          const bid = rand(options.branches);
          const delta = rand(10_000) - 5_000;
          try {
            await client.query('BEGIN');
            await client.query('UPDATE accounts SET abalance = abalance + $1 WHERE aid = $2', [
              delta,
              aid,
            ]);
            await client.query('SELECT abalance FROM accounts WHERE aid = $1', [aid]);
            await client.query('UPDATE tellers SET tbalance = tbalance + $1 WHERE tid = $2', [
              delta,
              tid,
            ]);
            await client.query('UPDATE branches SET bbalance = bbalance + $1 WHERE bid = $2', [
              delta,
              bid,
            ]);
            await client.query(
              'INSERT INTO history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, clock_timestamp())',
              [tid, bid, aid, delta],
            );
            await client.query('COMMIT');
            result.transactions++;
          } catch {
            result.failures++;
            await client.query('ROLLBACK').catch(() => undefined);
          }
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  return result;
}

/** Runs the TPC-B workload in the background (3 clients) until `stop()`, which returns its counts. */
export function backgroundTpcb(
  url: string,
  size: { branches: number; accountsPerBranch: number },
): { stop(): Promise<WorkloadResult> } {
  const abort = new AbortController();
  const running = runTpcb(url, { clients: 3, ms: 600_000, ...size, signal: abort.signal });
  return {
    stop: async () => {
      abort.abort();
      return running;
    },
  };
}

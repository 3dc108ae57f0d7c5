import pg from 'pg';
import { sleep } from '../support/sleep.js';

/** The demo's schema: accounts and their orders, the kind of tables an application has. */
export const DEMO_SCHEMA = `
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0);
  CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, amount numeric(12,2) NOT NULL,
                       note text, created_at timestamptz NOT NULL DEFAULT clock_timestamp());`;

/** Initial rows on the primary (copied to the replicas by attach). */
export const DEMO_SEED = `INSERT INTO accounts SELECT g, 'owner ' || g, 100 FROM generate_series(1, 1000) g;`;

/**
 * Writes orders and moves balances from `clients` connections until stopped,
 * at most `rate` transactions per second in all.
 */
export function startDemoWorkload(
  url: string,
  options: { clients: number; rate: number },
): { stop(): Promise<number> } {
  let running = true;
  let committed = 0;
  const perClientDelay = (1000 * options.clients) / options.rate;
  const loops = Array.from({ length: options.clients }, async () => {
    const client = new pg.Client({
      connectionString: url,
      application_name: 'lockstep-demo-workload',
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      while (running) {
        const account = 1 + Math.floor(Math.random() * 1000);
        const amount = (Math.random() * 100).toFixed(2);
        await client.query('BEGIN');
        await client.query('INSERT INTO orders (account_id, amount, note) VALUES ($1, $2, $3)', [
          account,
          amount,
          `order for ${account}`,
        ]);
        await client.query('UPDATE accounts SET balance = balance - $2 WHERE id = $1', [
          account,
          amount,
        ]);
        await client.query('COMMIT');
        committed++;
        await sleep(perClientDelay);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.allSettled(loops);
      return committed;
    },
  };
}

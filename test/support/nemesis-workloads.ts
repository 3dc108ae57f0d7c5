import pg from 'pg';
import { endClient } from '../../adapters/postgres/connection/node-connection.js';
import { sleep } from '../../plugin/support/sleep.js';

/** Accounts of the bank workload, and the money in it (never created nor destroyed). */
export const BANK_ACCOUNTS = 20;
export const BANK_TOTAL = BANK_ACCOUNTS * 1_000;

/** The nemesis schema: a critical bank table, a one-phase table, and the marker. */
export const NEMESIS_SCHEMA = `
  CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
  CREATE TABLE events (id bigserial PRIMARY KEY, v int NOT NULL, note text);
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;

export const NEMESIS_SEED = `INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, ${BANK_ACCOUNTS}) g`;

/** A small seeded PRNG (mulberry32): a schedule replays exactly from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A client loop that survives the primary going away: reconnects and goes on until stopped. */
function resilientLoop(
  url: string,
  step: (client: pg.Client, random: () => number) => Promise<void>,
  seed: number,
): { stop(): Promise<number> } {
  let stopped = false;
  let committed = 0;
  const random = seededRandom(seed);
  const running = (async () => {
    while (!stopped) {
      const client = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: 2_000,
        query_timeout: 10_000,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        while (!stopped) {
          await step(client, random);
          committed++;
          // An application's pace (a few hundred transactions a second), not a benchmark's.
          await sleep(2 + Math.floor(random() * 8));
        }
      } catch {
        await sleep(200);
      } finally {
        await endClient(client);
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await running;
      return committed;
    },
  };
}

/** Transfers between accounts, each one transaction (two-phase: accounts is critical). */
export function bankWorkload(url: string, seed: number): { stop(): Promise<number> } {
  return resilientLoop(
    url,
    async (client, random) => {
      const from = 1 + Math.floor(random() * BANK_ACCOUNTS);
      const to = 1 + ((from + Math.floor(random() * (BANK_ACCOUNTS - 1))) % BANK_ACCOUNTS);
      const amount = 1 + Math.floor(random() * 50);
      try {
        await client.query('BEGIN');
        // In key order: two transfers never deadlock.
        for (const [id, delta] of [
          [from, -amount],
          [to, amount],
        ].sort((a, b) => (a[0] as number) - (b[0] as number)))
          await client.query('UPDATE accounts SET balance = balance + $2 WHERE id = $1', [
            id,
            delta,
          ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    },
    seed,
  );
}

/** Inserts and updates of `events` (one-phase). */
export function eventsWorkload(url: string, seed: number): { stop(): Promise<number> } {
  return resilientLoop(
    url,
    async (client, random) => {
      if (random() < 0.6) {
        await client.query('INSERT INTO events (v, note) VALUES ($1, $2)', [
          Math.floor(random() * 1_000),
          `n${Math.floor(random() * 1e9)}`,
        ]);
      } else {
        await client.query(
          'UPDATE events SET v = v + 1 WHERE id = (SELECT max(id) - $1 FROM events)',
          [Math.floor(random() * 50)],
        );
      }
    },
    seed,
  );
}

/**
 * One session per node for the samplers, made again after any failure: a
 * sample every 250 ms on each node was a backend start each (~22 ms of
 * server CPU here), most of a nemesis's sessions.
 */
const sampleSessions = new Map<string, Promise<pg.Client>>();

async function sampleSession(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: 1_000,
    query_timeout: 1_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return client;
  } catch (error) {
    void endClient(client);
    throw error;
  }
}

/** The node's kept session, or a new one kept from now on. */
function keptSession(url: string): { session: Promise<pg.Client>; made: boolean } {
  const kept = sampleSessions.get(url);
  if (kept) return { session: kept, made: false };
  const session = sampleSession(url);
  sampleSessions.set(url, session);
  return { session, made: true };
}

/**
 * The rows `text` reads on a node, or null when it cannot be read now (down,
 * frozen): a sample, never a wait. A kept session that fails (the node was
 * restarted since) is replaced at once, so null still means a new session
 * could not read either, as when every sample had a session of its own.
 */
export async function sampleRows<T>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[] | null> {
  const first = keptSession(url);
  const rows = await sampleOn<T>(url, first.session, text, values);
  if (rows || first.made) return rows;
  // sampleOn dropped the failed one: a concurrent sample's replacement, or a new session.
  return sampleOn<T>(url, keptSession(url).session, text, values);
}

async function sampleOn<T>(
  url: string,
  session: Promise<pg.Client>,
  text: string,
  values: unknown[],
): Promise<T[] | null> {
  try {
    return (await (await session).query(text, values)).rows as T[];
  } catch {
    if (sampleSessions.get(url) === session) sampleSessions.delete(url);
    // A frozen server never answers the end either: nothing waits for it.
    void session.then((client) => endClient(client)).catch(() => undefined);
    return null;
  }
}

/** Ends the samplers' sessions (a nemesis's end). */
export async function endSampleSessions(): Promise<void> {
  const sessions = [...sampleSessions.values()];
  sampleSessions.clear();
  await Promise.all(sessions.map((s) => s.then((c) => endClient(c)).catch(() => undefined)));
}

/** The bank's total on a node, or null when it cannot be read now (down, frozen). */
export async function bankTotal(url: string): Promise<number | null> {
  const rows = await sampleRows<{ total: string }>(
    url,
    'SELECT sum(balance)::text AS total FROM accounts',
  );
  return rows ? Number(rows[0]?.total) : null;
}

/** Tables of the two-phase tests: `accounts` is critical, `events` is not. */
export const CRITICAL_TABLES = ['accounts', 'events'];

/** The `useAttached` options of the two-phase tests: two replicas, `public.accounts` critical. */
export function criticalSetup(twoPhase: Record<string, unknown> = {}) {
  return {
    replicas: 2,
    schema: `
      CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
      CREATE TABLE events (id serial PRIMARY KEY, note text NOT NULL);`,
    config: { twoPhase: { tables: ['public.accounts'], ...twoPhase } },
  };
}

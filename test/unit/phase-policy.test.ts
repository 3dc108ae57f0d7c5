import { describe, expect, it } from 'vitest';
import {
  DDL_MESSAGE,
  MIGRATION_MARKER,
  phasePolicy,
  TWO_PHASE_TAG,
} from '../../plugin/protocol/phase-policy.js';

const tx = (tables: string[], prefixes: string[] = []) => ({
  relations: new Set(
    tables.map((t) => ({ schema: t.split('.')[0] as string, name: t.split('.')[1] as string })),
  ),
  messagePrefixes: prefixes,
});

describe('phasePolicy', () => {
  it('sends writes to critical tables two-phase, others one-phase', () => {
    const decide = phasePolicy({ tables: ['billing.*'], tag: true });
    expect(decide(tx(['billing.invoices']))).toBe('two');
    expect(decide(tx(['public.orders', 'billing.invoices']))).toBe('two');
    expect(decide(tx(['public.orders']))).toBe('one');
  });

  it('honours the application tag only when configured', () => {
    expect(phasePolicy({ tables: [], tag: true })(tx(['public.orders'], [TWO_PHASE_TAG]))).toBe(
      'two',
    );
    expect(phasePolicy({ tables: [], tag: false })(tx(['public.orders'], [TWO_PHASE_TAG]))).toBe(
      'one',
    );
  });

  it('always sends captured DDL and migration markers two-phase', () => {
    const decide = phasePolicy({ tables: [], tag: false });
    expect(decide(tx([], [DDL_MESSAGE]))).toBe('two');
    expect(decide(tx([], [MIGRATION_MARKER]))).toBe('two');
    expect(decide(tx([], ['lockstep.other']))).toBe('one');
  });
});

import { describe, expect, it } from 'vitest';
import { matchesAnyPattern, parseTablePattern } from '../../plugin/protocol/table-pattern.js';

const matches = (pattern: string, schema: string, name: string) =>
  matchesAnyPattern([parseTablePattern(pattern)], { schema, name });

describe('table patterns', () => {
  it('matches wildcards per part', () => {
    expect(matches('public.*', 'public', 'orders')).toBe(true);
    expect(matches('public.*', 'billing', 'orders')).toBe(false);
    expect(matches('billing.inv*', 'billing', 'invoices')).toBe(true);
    expect(matches('*.*', 'any', 'thing')).toBe(true);
  });

  it('defaults the schema to public and folds unquoted names to lower case', () => {
    expect(matches('Orders', 'public', 'orders')).toBe(true);
    expect(matches('Orders', 'public', 'Orders')).toBe(false);
  });

  it('matches quoted parts literally, with dots, spaces and upper case', () => {
    expect(matches('"My Schema"."Order"', 'My Schema', 'Order')).toBe(true);
    expect(matches('public."drop table"', 'public', 'drop table')).toBe(true);
    expect(matches('"a.b".c', 'a.b', 'c')).toBe(true);
    expect(matches('"x*".y', 'xz', 'y')).toBe(false);
  });

  it('knows a pattern that takes one whole schema', () => {
    expect(parseTablePattern('public.*').wholeSchema).toBe('public');
    expect(parseTablePattern('"My Schema".*').wholeSchema).toBe('My Schema');
    expect(parseTablePattern('bill*.*').wholeSchema).toBeNull();
    expect(parseTablePattern('public.orders').wholeSchema).toBeNull();
  });

  it('refuses malformed patterns', () => {
    expect(() => parseTablePattern('a.b.c')).toThrow(/schema.table/);
    expect(() => parseTablePattern('"open.b')).toThrow(/unbalanced/);
    expect(() => parseTablePattern('a.')).toThrow(/schema.table/);
  });
});

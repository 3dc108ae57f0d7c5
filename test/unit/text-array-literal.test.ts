import { describe, expect, it } from 'vitest';
import { textArrayLiteral } from '../../adapters/postgres/bulk-statement.js';
import { UNCHANGED_TOAST } from '../../plugin/protocol/index.js';

describe('textArrayLiteral', () => {
  it('quotes every element and escapes only backslash and double quote', () => {
    const rows = [
      ['1', 'plain'],
      ['2', 'a "quoted" \\ word'],
      ['3', null],
      ['4', ''],
      ['5', 'NULL'],
    ];
    expect(textArrayLiteral(rows, 0)).toBe('{"1","2","3","4","5"}');
    expect(textArrayLiteral(rows, 1)).toBe('{"plain","a \\"quoted\\" \\\\ word",NULL,"","NULL"}');
  });

  it('keeps braces, commas and spaces inside the quotes, and sends unchanged TOAST as NULL', () => {
    expect(textArrayLiteral([['{1,2}'], [' x , y '], [UNCHANGED_TOAST]], 0)).toBe(
      '{"{1,2}"," x , y ",NULL}',
    );
  });

  it('is an empty array for no rows', () => {
    expect(textArrayLiteral([], 0)).toBe('{}');
  });
});

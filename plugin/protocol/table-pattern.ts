/**
 * Table patterns from the configuration: `schema.table`, either part may use
 * `*` as a wildcard, and either part may be double-quoted to keep dots, upper
 * case or spaces (`"My Schema"."Order"`). Unquoted parts are folded to lower
 * case, as Postgres folds unquoted identifiers.
 */
export interface TablePattern {
  readonly text: string;
  readonly schema: RegExp;
  readonly table: RegExp;
  /** The schema, when the pattern names one schema and every table in it (`public.*`). */
  readonly wholeSchema: string | null;
}

function splitParts(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '"') {
      if (quoted && text[i + 1] === '"') {
        current += '"';
        i++;
      } else {
        quoted = !quoted;
        wasQuoted = true;
      }
    } else if (ch === '.' && !quoted) {
      parts.push(wasQuoted ? `"${current}` : current.toLowerCase());
      current = '';
      wasQuoted = false;
    } else {
      current += ch;
    }
  }
  if (quoted) throw new Error(`unbalanced quote in table pattern ${JSON.stringify(text)}`);
  parts.push(wasQuoted ? `"${current}` : current.toLowerCase());
  return parts;
}

function partToRegExp(part: string): RegExp {
  // A leading `"` marks a quoted part: matched literally, no wildcards.
  if (part.startsWith('"')) return new RegExp(`^${escapeRegExp(part.slice(1))}$`);
  return new RegExp(`^${part.split('*').map(escapeRegExp).join('.*')}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Parses one pattern; a pattern without a schema means `public`. */
export function parseTablePattern(text: string): TablePattern {
  const parts = splitParts(text.trim());
  if (parts.length > 2 || parts.some((p) => p === '' || p === '"')) {
    throw new Error(`table pattern ${JSON.stringify(text)} is not of the form schema.table`);
  }
  const [schema, table] = (parts.length === 2 ? parts : ['public', parts[0]]) as [string, string];
  const literal = schema.startsWith('"') ? schema.slice(1) : schema.includes('*') ? null : schema;
  return {
    text,
    schema: partToRegExp(schema),
    table: partToRegExp(table),
    wholeSchema: table === '*' ? literal : null,
  };
}

/** True when the table matches any of the patterns. */
export function matchesAnyPattern(
  patterns: readonly TablePattern[],
  table: { readonly schema: string; readonly name: string },
): boolean {
  return patterns.some((p) => p.schema.test(table.schema) && p.table.test(table.name));
}

/** The schemas that patterns take whole (`public.*`), for a publication of whole schemas. */
export function wholeSchemas(patterns: readonly string[]): string[] {
  const schemas = patterns.map((p) => parseTablePattern(p).wholeSchema);
  return [...new Set(schemas.filter((s): s is string => s !== null))];
}

/**
 * Names as SQL writes them, for the statements lockstep suggests in a fix:
 * double-quoted with embedded quotes doubled, so a name holding `"` reads as
 * that one name when the operator copies the statement. Pure (the adapters
 * quote the SQL they run with the driver's own escapeIdentifier).
 */

/** One name: `Order` → `"Order"`, `a"b` → `"a""b"`. */
export function sqlName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A schema-qualified name: `"public"."orders"`. */
export function sqlQualifiedName(schema: string, name: string): string {
  return `${sqlName(schema)}.${sqlName(name)}`;
}

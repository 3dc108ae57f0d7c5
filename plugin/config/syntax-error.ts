/**
 * Where a configuration text fails to parse, never what it says there: the
 * parsers' own messages quote the text around the error, and a configuration
 * line often holds a password (a connection URL).
 */

/** A fixed reason for a JSON.parse error, with its place when the engine gives one. */
export function jsonSyntaxProblem(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : '';
  const position = /at position (\d+)/.exec(message)?.[1];
  const reason = /end of JSON input/.test(message) ? 'the text ends too early' : 'a syntax error';
  if (position === undefined) return `not valid JSON: ${reason}`;
  const before = text.slice(0, Number(position)).split('\n');
  const column = (before[before.length - 1]?.length ?? 0) + 1;
  return `not valid JSON: ${reason} at line ${before.length}, column ${column} (position ${position})`;
}

/** A YAML parse error's code and place (the `yaml` package's YAMLParseError), without its message. */
export function yamlSyntaxProblem(error: unknown): string {
  const e = error as { code?: unknown; linePos?: ReadonlyArray<{ line: number; col: number }> };
  const where = e.linePos?.[0];
  const code = typeof e.code === 'string' && /^[A-Z_]+$/.test(e.code) ? ` (${e.code})` : '';
  return where
    ? `not valid YAML at line ${where.line}, column ${where.col}${code}`
    : `not valid YAML${code}`;
}

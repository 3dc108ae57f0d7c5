/**
 * npm run check:layout — the ports-and-adapters rules of CONTRIBUTING.md, as
 * an import scan: services in plugin/ never import pg or an adapter (only the
 * composition roots do), the protocol core imports nothing outside itself,
 * and adapters import from plugin/ only the protocol core, the ports and the
 * shared helpers of plugin/support/ (signal, sleep). Also
 * no source file over 400 lines and no function over 80 (tests excepted: a
 * `describe` block is a list, not a function). Prints each violation; exits 1
 * if any.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(import.meta.dirname, '..');
const MAX_LINES = 400;
const MAX_FUNCTION_LINES = 80;
/**
 * Where adapters and services are wired together. The client library is one
 * too: applications import it, and it adapts to their own drivers (`pg`,
 * Kysely).
 */
const COMPOSITION_ROOTS = [
  /^plugin\/cli\//,
  /^plugin\/demo\//,
  /^plugin\/sidecar\/create-sidecar\.ts$/,
  /^plugin\/client\//,
];
/** What an adapter may import from plugin/. */
const ADAPTER_MAY_IMPORT = [/^plugin\/protocol\//, /^plugin\/ports\//, /^plugin\/support\//];
const DRIVERS = new Set(['pg', 'pg-copy-streams', 'kysely', 'pg-protocol']);

function sources(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir))) {
    const relative = path.join(dir, entry);
    if (statSync(path.join(ROOT, relative)).isDirectory()) found.push(...sources(relative));
    else if (relative.endsWith('.ts') && !relative.endsWith('.d.ts')) found.push(relative);
  }
  return found;
}

/** The modules a file imports (static and dynamic), resolved to repository paths when relative. */
function importsOf(file: string, text: string): string[] {
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map(
    (m) => m[1] as string,
  );
  return specifiers.map((s) =>
    s.startsWith('.')
      ? path.normalize(path.join(path.dirname(file), s)).replace(/\.js$/, '.ts')
      : s,
  );
}

/** Functions (declarations, methods, arrows, expressions) longer than the limit. */
function longFunctions(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lineOf = (position: number) => source.getLineAndCharacterOfPosition(position).line;
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const lines = lineOf(node.getEnd()) - lineOf(node.getStart()) + 1;
      const name = node.name?.getText(source) ?? '(anonymous)';
      if (lines > MAX_FUNCTION_LINES)
        found.push(
          `${file}:${lineOf(node.getStart()) + 1}: function ${name} has ${lines} lines (at most ${MAX_FUNCTION_LINES})`,
        );
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const violations: string[] = [];
for (const file of [
  ...sources('plugin'),
  ...sources('adapters'),
  ...sources('scripts'),
  ...sources('bench'),
  ...sources('migrations'),
]) {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const lines = text.split('\n').length - 1;
  if (lines > MAX_LINES) violations.push(`${file}: ${lines} lines (at most ${MAX_LINES})`);
  violations.push(...longFunctions(file, text));
  const root = COMPOSITION_ROOTS.some((r) => r.test(file));
  for (const target of importsOf(file, text)) {
    if (file.startsWith('plugin/protocol/')) {
      if (!target.startsWith('plugin/protocol/') && !target.startsWith('node:'))
        violations.push(`${file}: the protocol core imports ${target}`);
    } else if (file.startsWith('plugin/') && !root) {
      if (DRIVERS.has(target) || target.startsWith('adapters/'))
        violations.push(`${file}: a service imports ${target} (only composition roots may)`);
    } else if (file.startsWith('adapters/')) {
      if (target.startsWith('plugin/') && !ADAPTER_MAY_IMPORT.some((r) => r.test(target)))
        violations.push(
          `${file}: an adapter imports ${target} (only plugin/protocol/, plugin/ports/ and plugin/support/)`,
        );
    }
  }
}
// Tests keep the file limit too; a describe block is a list, not a function, so no function limit.
for (const file of sources('test')) {
  const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n').length - 1;
  if (lines > MAX_LINES) violations.push(`${file}: ${lines} lines (at most ${MAX_LINES})`);
}
for (const violation of violations) console.error(violation);
if (violations.length > 0) {
  console.error(`check:layout: ${violations.length} violation(s); see CONTRIBUTING.md`);
  process.exit(1);
}
console.log('check:layout: ok');

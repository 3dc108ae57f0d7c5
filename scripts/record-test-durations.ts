/**
 * tsx scripts/record-test-durations.ts LOG — writes each test file's duration,
 * as the vitest output in LOG (a CI run's log) reports it, to
 * test/harness/file-durations.json, which the duration sequencer orders files
 * by (longest first). A file reported twice (the second PostgreSQL major)
 * keeps its first duration.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = path.join(ROOT, 'test/harness/file-durations.json');
// " ✓  integration  test/integration/x.test.ts (3 tests) 12.34s" (or "| 1 skipped", "ms").
const FILE_LINE = /^\s*[✓×❯]\s+\w+\s+(test\/\S+\.test\.ts)\s.*?\s(\d+(?:\.\d+)?)(ms|s)\s*$/;

function durations(log: string): Record<string, number> {
  const found: Record<string, number> = {};
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the log's colour codes
  for (const line of log.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const match = FILE_LINE.exec(line);
    if (!match) continue;
    const [, file, amount, unit] = match as unknown as [string, string, string, string];
    const seconds = unit === 'ms' ? Number(amount) / 1000 : Number(amount);
    found[file] ??= Math.round(seconds * 10) / 10;
  }
  return found;
}

const logFile = process.argv[2];
if (!logFile) {
  console.error('usage: tsx scripts/record-test-durations.ts LOG');
  process.exit(2);
}
const found = durations(readFileSync(logFile, 'utf8'));
const sorted = Object.fromEntries(Object.entries(found).sort(([a], [b]) => (a < b ? -1 : 1)));
writeFileSync(OUT, `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`${Object.keys(sorted).length} files written to ${path.relative(ROOT, OUT)}`);

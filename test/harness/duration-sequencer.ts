import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Seconds each test file took in a recorded CI run (`scripts/record-test-durations.ts`). */
const DURATIONS_FILE = path.join(import.meta.dirname, 'file-durations.json');

function recordedDurations(): Map<string, number> {
  try {
    const recorded = JSON.parse(readFileSync(DURATIONS_FILE, 'utf8')) as Record<string, number>;
    return new Map(Object.entries(recorded));
  } catch {
    return new Map();
  }
}

/**
 * Longest files first, from the durations of a recorded run. On a clean clone
 * vitest has no cache and orders by file size, which started the longest
 * files (the nemesis runs, small files) last: one worker ran them alone while
 * the other had finished. Longest first keeps both busy to the end. Files not
 * recorded (new ones) go first, as vitest runs unknown files first; vitest's
 * own cache, where a run left one, decides among the rest as before.
 */
export default class DurationSequencer extends BaseSequencer {
  private readonly durations = recordedDurations();

  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const byCache = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (spec: TestSpecification) =>
      this.durations.get(path.relative(root, spec.moduleId).split(path.sep).join('/')) ??
      Number.POSITIVE_INFINITY;
    const order = new Map(byCache.map((spec, i) => [spec, i]));
    return [...byCache].sort((a, b) => {
      const group = a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder;
      if (group !== 0) return group;
      if (a.project.name !== b.project.name) return a.project.name < b.project.name ? -1 : 1;
      const longer = seconds(b) - seconds(a);
      if (longer !== 0 && !Number.isNaN(longer)) return longer;
      return (order.get(a) ?? 0) - (order.get(b) ?? 0);
    });
  }
}

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { sleep } from '../support/sleep.js';

/** How long a changed content must stay the same before it counts (ms). */
const SETTLE_MS = 250;
/** Checks in a row that saw a change which did not settle before the watch says so. */
const UNSETTLED_CHECKS = 5;

/** How the file is watched; tests replace the reader. */
export interface ConfigWatchOptions {
  /** The content the configuration in force was read from: a change made before watching counts too. */
  readonly baseline?: string | null;
  /** A changed content counts once a second read this much later agrees (ms). */
  readonly settleMs?: number;
  /** Reads the file; null when it cannot be read right now. */
  readonly read?: () => Promise<string | null>;
  /**
   * Called once when `UNSETTLED_CHECKS` checks in a row found the file changed
   * but never the same twice (rewritten faster than `settleMs`): no edit is
   * taken then, and the operator must hear why.
   */
  readonly unsettled?: (checks: number) => void;
}

/**
 * Calls `changed` whenever the file's content differs from the last content
 * seen, checked every `intervalMs`. Content, not the modification time: a
 * Kubernetes ConfigMap update swaps a symlink, and an editor may keep the
 * time. A changed content counts only once a second read `settleMs` later
 * agrees: a file caught half-written can parse (YAML cut after one replica
 * of two), and acting on it would remove a replica, let the slot go past it
 * and leave it stale. A file that cannot be read right now (being replaced)
 * or still changing is checked again next time. Returns a function that
 * stops watching.
 */
export function watchConfigFile(
  file: string,
  intervalMs: number,
  changed: () => void,
  options: ConfigWatchOptions = {},
): () => void {
  const read = options.read ?? (() => readFile(file, 'utf8').catch(() => null));
  const settleMs = options.settleMs ?? Math.min(SETTLE_MS, intervalMs);
  let last: string | null = options.baseline ?? null;
  if (last === null) {
    try {
      last = readFileSync(file, 'utf8');
    } catch {
      // Read at the first check instead.
    }
  }
  /** Changed checks in a row whose content was not the same twice. */
  let unsettledChecks = 0;
  /** The content now, or null: unreadable, or not the same twice. */
  const settled = async (): Promise<string | null> => {
    const text = await read();
    if (text === null || text === last) return text;
    await sleep(settleMs);
    if ((await read()) === text) return text;
    unsettledChecks++;
    if (unsettledChecks === UNSETTLED_CHECKS) options.unsettled?.(unsettledChecks);
    return null;
  };
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void settled().then((text) => {
      checking = false;
      if (text !== null) unsettledChecks = 0;
      if (text === null || text === last) return;
      const first = last === null;
      last = text;
      if (!first) changed();
    });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

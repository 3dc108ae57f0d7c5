import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * Calls `changed` whenever the file's content differs from the last content
 * seen, checked every `intervalMs`. Content, not the modification time: a
 * Kubernetes ConfigMap update swaps a symlink, and an editor may keep the
 * time. A file that cannot be read right now (being replaced) is checked
 * again next time. Returns a function that stops watching.
 */
export function watchConfigFile(
  file: string,
  intervalMs: number,
  changed: () => void,
  /** The content the configuration in force was read from: a change made before watching counts too. */
  baseline?: string | null,
): () => void {
  const read = () => readFile(file, 'utf8').catch(() => null);
  let last: string | null = baseline ?? null;
  if (last === null) {
    try {
      last = readFileSync(file, 'utf8');
    } catch {
      // Read at the first check instead.
    }
  }
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void read().then((text) => {
      checking = false;
      if (text === null || text === last) return;
      const first = last === null;
      last = text;
      if (!first) changed();
    });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

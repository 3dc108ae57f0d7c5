import type { Logger } from 'pino';
import type { SequenceValue } from '../protocol/sequence-values.js';

/** What the in-process sequence copy reads and writes (the Postgres adapter, wired by create-sidecar). */
export interface SequenceCopierParts {
  /** The primary's values, and the `schema.name` of those an open transaction holds (left out). */
  readonly readPrimary: () => Promise<{ values: SequenceValue[]; held: readonly string[] }>;
  /** Moves one replica's sequences up to `values`, never back. */
  readonly advance: (url: string, values: readonly SequenceValue[]) => Promise<number>;
  /** The replicas now (a reload may change them). */
  readonly replicas: () => ReadonlyArray<{ readonly name: string; readonly url: string }>;
  readonly log: Logger;
}

/** What a node's warning says of the primary's sequences an open transaction holds. */
export function heldSequences(held: readonly string[]): string {
  return `an open transaction holds ${held.join(', ')}`;
}

/**
 * The in-process sequence copy, one period of it per call: reads the
 * primary's values, then moves each replica up to them. A replica's copy is
 * not waited for, and a replica whose last copy still runs (it does not
 * answer) is passed over, so it delays only its own. A node that fails (a
 * replica, or the primary with a held sequence) is warned of once per run of
 * failures (as over the bus), then at debug until it succeeds again.
 */
export function sequenceCopier(parts: SequenceCopierParts): () => Promise<void> {
  let failing = new Set<string>();
  const running = new Set<string>();
  const report = (node: string, err: string) => {
    const fields = { node, err, event: 'sequence-sync-failed' };
    if (failing.has(node)) parts.log.debug(fields, 'sequence values not copied now');
    else parts.log.warn(fields, 'sequence values not copied now: trying again');
    failing.add(node);
  };
  return async () => {
    const replicas = parts.replicas();
    // A replica removed since is forgotten.
    failing = new Set(
      [...failing].filter((n) => n === 'primary' || replicas.some((r) => r.name === n)),
    );
    let values: SequenceValue[];
    try {
      const read = await parts.readPrimary();
      values = read.values;
      if (read.held.length === 0) failing.delete('primary');
      else report('primary', heldSequences(read.held));
    } catch (error) {
      return report('primary', (error as Error).message);
    }
    for (const { name, url } of replicas) {
      if (running.has(name)) continue;
      running.add(name);
      void parts
        .advance(url, values)
        .then(
          () => failing.delete(name),
          (error: unknown) => report(name, (error as Error).message),
        )
        .finally(() => running.delete(name));
    }
  };
}

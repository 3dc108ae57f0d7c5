import type { SequenceValue } from '../protocol/sequence-values.js';
import { RepeatGate } from './sequence-relay.js';

/** A replica as the copy knows it: a new URL is a new replica. */
export interface SequenceCopyTarget {
  readonly name: string;
  readonly url: string;
}

/** What one period did: sequences moved per replica, and why a replica was not reached. */
export interface SequenceCopyResult {
  readonly advanced: Record<string, number>;
  readonly failed: Record<string, string>;
}

/**
 * In process, every `sequenceSyncMs`: the primary's values read once, then
 * each replica moved up to them (never backwards), skipping a replica whose
 * last copy had the same values (a {@link RepeatGate} each, as the bus
 * relay does): an idle stream costs one primary session a period, not one
 * per node, and a sequence set back by hand is still put right within
 * REPEAT_EVERY periods. A replica that fails is retried the next period.
 */
export function gatedSequenceCopy(
  read: () => Promise<SequenceValue[]>,
  advance: (replica: SequenceCopyTarget, values: readonly SequenceValue[]) => Promise<number>,
): (replicas: readonly SequenceCopyTarget[]) => Promise<SequenceCopyResult> {
  const gates = new Map<string, RepeatGate>();
  return async (replicas) => {
    const values = await read();
    const key = JSON.stringify(values);
    const advanced: Record<string, number> = {};
    const failed: Record<string, string> = {};
    const current = new Set(replicas.map(gateKey));
    // A replica removed from the configuration forgets its gate; re-added, it is copied at once.
    for (const known of gates.keys()) if (!current.has(known)) gates.delete(known);
    await Promise.all(
      replicas.map(async (replica) => {
        const gate = gates.get(gateKey(replica)) ?? new RepeatGate();
        gates.set(gateKey(replica), gate);
        if (!gate.due(key)) return;
        try {
          advanced[replica.name] = await advance(replica, values);
          gate.done(key);
        } catch (error) {
          failed[replica.name] = (error as Error).message;
        }
      }),
    );
    return { advanced, failed };
  };
}

function gateKey(replica: SequenceCopyTarget): string {
  return JSON.stringify([replica.name, replica.url]);
}

import type { Logger } from 'pino';
import type { SequenceValuesBus } from '../ports/sequence-values-bus.js';
import type { SequenceValue } from '../protocol/sequence-values.js';
import { Periodic } from '../support/periodic.js';

/** A running relay; stopping waits for the round in progress. */
export interface SequenceRelay {
  stop(): Promise<void>;
}

/** What a relay needs; `everyMs` 0 turns it off. */
export interface SequenceRelayParts {
  readonly bus: SequenceValuesBus;
  readonly everyMs: number;
  readonly log: Logger;
  /** The node the relay reads or writes, for its logs. */
  readonly node: string;
}

/**
 * The publisher's side: every `everyMs`, while `active()` (it holds the
 * coordinator lock), reads the primary's sequence values and writes them to
 * the bus. Neither the primary nor the bus being out blocks publishing.
 */
export function publishSequences(
  parts: SequenceRelayParts,
  read: () => Promise<SequenceValue[]>,
  active: () => boolean,
): SequenceRelay {
  const sent = new RepeatGate();
  return relay(parts, async () => {
    // Another publisher may have written since: once active again, the first values go out.
    if (!active()) return sent.reset();
    const values = await read();
    const key = JSON.stringify(values);
    if (!sent.due(key)) return;
    await parts.bus.put(values);
    sent.done(key);
  });
}

/**
 * The agent's side: every `everyMs`, reads the values on the bus and moves
 * the replica's sequences up to them (never backwards). Neither the replica
 * nor the bus being out blocks applying.
 *
 * `appliedVersion` is the replica's position: a packet applied since the
 * last copy may have set a sequence back (`TRUNCATE … RESTART IDENTITY`, a
 * replicated `ALTER SEQUENCE`) while the primary's value ended where it was,
 * so the values are applied again even when unchanged.
 */
export function applySequences(
  parts: SequenceRelayParts,
  advance: (values: readonly SequenceValue[]) => Promise<number>,
  appliedVersion: () => number | null,
): SequenceRelay {
  const applied = new RepeatGate();
  return relay(parts, async () => {
    // Read first: a packet applied while advancing makes the next period due.
    const version = appliedVersion();
    const values = await parts.bus.get();
    if (!values) return;
    const key = `${version}:${JSON.stringify(values)}`;
    // The same values at the same position: the replica's sequences are there already (no connection).
    if (!applied.due(key)) return;
    const moved = await advance(values);
    applied.done(key);
    if (moved > 0)
      parts.log.debug(
        { node: parts.node, moved, event: 'sequences-advanced' },
        'sequences moved up',
      );
  });
}

/** Unchanged values are passed on again every REPEAT_EVERY periods, in case the last copy was lost. */
export const REPEAT_EVERY = 6;

/**
 * Whether values are worth passing on: new ones always; the same as the last
 * ones passed on only every {@link REPEAT_EVERY}th time, so that a bucket
 * recreated empty, or a replica sequence set back by hand (outside
 * replication), is put right
 * within REPEAT_EVERY periods (a minute at the default 10 s), while an idle stream costs no replica connection and no
 * bus write every period.
 */
export class RepeatGate {
  private last: string | null = null;
  private skipped = 0;

  due(key: string): boolean {
    if (key !== this.last) return true;
    this.skipped++;
    return this.skipped >= REPEAT_EVERY;
  }

  /** Whatever comes next is passed on. */
  reset(): void {
    this.last = null;
    this.skipped = 0;
  }

  /** `key` was passed on: the same again is skipped for a while. */
  done(key: string): void {
    this.last = key;
    this.skipped = 0;
  }
}

/** Runs `step` periodically, logging the first failure of a run of them as a warning. */
function relay(parts: SequenceRelayParts, step: () => Promise<void>): SequenceRelay {
  if (parts.everyMs <= 0) return { stop: async () => undefined };
  let failing = false;
  const periodic = new Periodic(
    parts.everyMs,
    async () => {
      await step();
      failing = false;
    },
    (error) => {
      const fields = { node: parts.node, err: error.message, event: 'sequence-sync-failed' };
      if (failing) parts.log.debug(fields, 'sequence values not passed on now');
      else parts.log.warn(fields, 'sequence values not passed on now: trying again');
      failing = true;
    },
  );
  return { stop: () => periodic.stop() };
}

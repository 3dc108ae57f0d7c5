import type { SequenceValue } from '../protocol/sequence-values.js';

/**
 * The primary's sequence values on the bus (DESIGN.md, "Scale-out: the
 * packet bus"): the publisher writes them, each agent reads them and moves
 * its replica's sequences forward. Every call is bounded in time.
 */
export interface SequenceValuesBus {
  /** Replaces the values kept; rejects when the bus does not take them in time. */
  put(values: readonly SequenceValue[]): Promise<void>;
  /** The values kept; null when none were written yet. */
  get(): Promise<SequenceValue[] | null>;
}

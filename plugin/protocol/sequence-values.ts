/**
 * The primary's sequence values as the publisher hands them to the agents
 * over the bus: one JSON document under one key of a key-value bucket beside
 * the packet stream (sequence names need not be valid keys).
 */

/** A sequence of a replicated table and the primary's last value for it (a bigint, as text). */
export interface SequenceValue {
  readonly schema: string;
  readonly name: string;
  readonly lastValue: string;
}

/** The KV bucket of a packet stream's sequence values: `<stream>_SEQUENCES`. */
export function sequenceValuesBucket(stream: string): string {
  return `${stream}_SEQUENCES`;
}

/** The one key the values are kept under. */
export const SEQUENCE_VALUES_KEY = 'primary';

export function encodeSequenceValues(values: readonly SequenceValue[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ values }));
}

/** The values a stored document holds; null when it is not one this version reads. */
export function decodeSequenceValues(bytes: Uint8Array): SequenceValue[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  const values = (parsed as { values?: unknown } | null)?.values;
  if (!Array.isArray(values)) return null;
  const valid = values.every(
    (v: Partial<SequenceValue> | null) =>
      typeof v?.schema === 'string' &&
      typeof v.name === 'string' &&
      typeof v.lastValue === 'string' &&
      /^-?\d{1,19}$/.test(v.lastValue),
  );
  return valid ? (values as SequenceValue[]) : null;
}

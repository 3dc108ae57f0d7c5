/** Microseconds between the Unix epoch and Postgres's (2000-01-01), in which the protocol counts time. */
export const POSTGRES_EPOCH_MICROS = 946_684_800_000_000;

/** Microseconds since the Unix epoch as ISO-8601 UTC with all six fractional digits. */
export function microsToIso(micros: number): string {
  // Microseconds since 1970 stay below 2^53 until the year 2255: Number is exact.
  const millis = Math.floor(micros / 1000);
  const rest = micros - millis * 1000;
  const iso = new Date(millis).toISOString();
  return `${iso.slice(0, -1)}${rest.toString().padStart(3, '0')}Z`;
}

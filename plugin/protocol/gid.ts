/**
 * Global transaction ids of lockstep's prepared transactions. Built and
 * validated here alone: only `[A-Za-z0-9_]`, well under Postgres's 200 bytes,
 * naming lockstep, the stream, the round's first version and the round number
 * (which never repeats for a stream, so an old decision never matches a new round).
 */

/** Parts of a lockstep gid. */
export interface GidParts {
  readonly stream: string;
  /** First packet version the round delivers. */
  readonly version: number;
  /** The stream's round number. */
  readonly round: number;
}

const STREAM = /^[A-Za-z0-9_]{1,63}$/;

/** `lockstep_<stream>_<version>_<round>`. */
export function makeGid(parts: GidParts): string {
  if (!STREAM.test(parts.stream))
    throw new RangeError(`invalid stream name for a gid: ${parts.stream}`);
  for (const n of [parts.version, parts.round]) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid number in a gid: ${n}`);
  }
  return `lockstep_${parts.stream}_${parts.version}_${parts.round}`;
}

/** The parts of `gid` when it is one of `stream`'s gids; null for any other transaction. */
export function parseGid(gid: string, stream: string): GidParts | null {
  const prefix = `lockstep_${stream}_`;
  if (!gid.startsWith(prefix)) return null;
  const match = /^(\d{1,15})_(\d{1,15})$/.exec(gid.slice(prefix.length));
  if (!match) return null;
  return { stream, version: Number(match[1]), round: Number(match[2]) };
}

/** The LIKE pattern that finds every lockstep gid (of any stream) in `pg_prepared_xacts`. */
export const GID_LIKE = 'lockstep\\_%';

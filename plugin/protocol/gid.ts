/**
 * Global transaction ids of lockstep's prepared transactions. Built and
 * validated here alone: only `[A-Za-z0-9_]`, well under Postgres's 200 bytes,
 * naming lockstep, the stream, the round's first version, the round number and
 * the coordinator's activation epoch: two activations (a deposed coordinator
 * that still runs and its successor) never share a gid, so one's abort cannot
 * roll back the other's transaction.
 */

/** Parts of a lockstep gid. */
export interface GidParts {
  readonly stream: string;
  /** First packet version the round delivers. */
  readonly version: number;
  /** The stream's round number. */
  readonly round: number;
  /** The activation epoch of the coordinator that runs the round (0 in gids made before epochs). */
  readonly epoch: number;
}

const STREAM = /^[A-Za-z0-9_]{1,63}$/;

function checkParts(stream: string, numbers: readonly number[]): void {
  if (!STREAM.test(stream)) throw new RangeError(`invalid stream name for a gid: ${stream}`);
  for (const n of numbers) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid number in a gid: ${n}`);
  }
}

/** `gid` itself when it is a lockstep gid (safe to quote as a literal in PREPARE/COMMIT PREPARED); throws otherwise. */
export function checkedGid(gid: string): string {
  if (!/^lockstep_[A-Za-z0-9_]{1,180}$/.test(gid))
    throw new RangeError(`not a lockstep gid: ${gid}`);
  return gid;
}

/**
 * `lockstep_<stream>_<version>_<round>e<epoch>`. The epoch is glued to the
 * round so that no gid of stream `s` also parses as one of a stream `s_<n>`.
 */
export function makeGid(parts: GidParts): string {
  checkParts(parts.stream, [parts.version, parts.round, parts.epoch]);
  return `lockstep_${parts.stream}_${parts.version}_${parts.round}e${parts.epoch}`;
}

/**
 * A migration's (or `exec`'s) gid: `lockstep_<stream>_m<id>_<attempt>`, where
 * `id` is the round's start in ms since the epoch on its coordinator's clock
 * (unique per run; read back by {@link migrationGidTime}) — never confused
 * with a stream round's.
 */
export function makeMigrationGid(stream: string, id: number, attempt: number): string {
  checkParts(stream, [id, attempt]);
  return `lockstep_${stream}_m${id}_${attempt}`;
}

/** Whether `gid` is one of `stream`'s migration gids. */
export function isMigrationGid(gid: string, stream: string): boolean {
  const prefix = `lockstep_${stream}_m`;
  return gid.startsWith(prefix) && /^\d{1,15}_\d{1,15}$/.test(gid.slice(prefix.length));
}

/**
 * When a migration gid's round began (ms since the epoch, its coordinator's
 * clock), from the gid alone; null for any other transaction. Matched from
 * the end, so any stream name parses.
 */
export function migrationGidTime(gid: string): number | null {
  const match = /^lockstep_[A-Za-z0-9_]{1,63}_m(\d{1,15})_\d{1,15}$/.exec(gid);
  return match ? Number(match[1]) : null;
}

/**
 * The parts of `gid` when it is one of `stream`'s stream-round gids; null for
 * any other transaction. Gids from before epochs (`…_<version>_<round>`) parse
 * with epoch 0, so a prepared transaction left by an older lockstep is still
 * recovered.
 */
export function parseGid(gid: string, stream: string): GidParts | null {
  const prefix = `lockstep_${stream}_`;
  if (!gid.startsWith(prefix)) return null;
  const match = /^(\d{1,15})_(\d{1,15})(?:e(\d{1,15}))?$/.exec(gid.slice(prefix.length));
  if (!match) return null;
  return {
    stream,
    version: Number(match[1]),
    round: Number(match[2]),
    epoch: Number(match[3] ?? 0),
  };
}

/** The LIKE pattern that finds every lockstep gid (of any stream) in `pg_prepared_xacts`. */
export const GID_LIKE = 'lockstep\\_%';

/**
 * What a lockstep gid of any stream is, from the gid alone: a migration
 * round's, or a stream round's with its parts. The numeric tail is matched
 * from the end, so a stream name with `_<digits>` in it still parses whole.
 */
export function classifyGid(
  gid: string,
): { kind: 'migration' } | { kind: 'stream'; parts: GidParts } | null {
  if (/^lockstep_[A-Za-z0-9_]{1,63}_m\d{1,15}_\d{1,15}$/.test(gid)) return { kind: 'migration' };
  const match = /^lockstep_([A-Za-z0-9_]{1,63})_(\d{1,15})_(\d{1,15})(?:e(\d{1,15}))?$/.exec(gid);
  if (!match) return null;
  const parts = parseGid(gid, match[1] as string);
  return parts ? { kind: 'stream', parts } : null;
}

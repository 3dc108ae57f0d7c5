import { ApplyError } from '../../../plugin/ports/apply-error.js';
import { redactUrl, scrubSecrets } from '../connection/connection-url.js';

const CONNECTION_LOST =
  /Connection terminated|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|the database system is (starting up|shutting down)|terminating connection|Client has encountered a connection error/i;

/**
 * A value the primary holds does not fit the replica's column: too long for
 * varchar(n)/char(n) (22001), of the wrong length for bit(n) (22026), out of
 * range for numeric(p,s) or a smaller integer (22003). Schema drift, never data.
 */
const VALUE_DOES_NOT_FIT = new Set(['22001', '22026', '22003']);

/** What every classified error carries. */
interface ErrorBase {
  readonly node: string;
  readonly version: number;
  readonly table: string | undefined;
  readonly sqlState: string | undefined;
  readonly cause: unknown;
}

/** Where an apply error happened. */
export interface ApplyErrorPlace {
  readonly node: string;
  /** The replica's connection string: never shown, only scrubbed from messages. */
  readonly url: string;
  readonly version: number;
  readonly table: string | undefined;
}

/**
 * Turns a driver or server error into an ApplyError naming the table, version
 * and fix; its kind tells the agent whether to wait (unreachable,
 * unresponsive), stop (fenced) or halt with the fix (conflict, schema).
 */
export function classifyApplyError(error: unknown, place: ApplyErrorPlace): ApplyError {
  if (error instanceof ApplyError) return error;
  const { node, url, version, table } = place;
  const e = error as { code?: string; message?: string; detail?: string };
  const message = scrubSecrets(
    `${e.message ?? String(error)}${e.detail ? ` (${e.detail})` : ''}`,
    url,
  );
  const base: ErrorBase = { node, version, table, sqlState: e.code, cause: error };
  const lost = connectionFailure(e, base, message, url);
  if (lost) return lost;
  if (e.code === '23505') {
    return new ApplyError({
      ...base,
      kind: 'conflict',
      problem: `${message} [${e.code}]`,
      fix: `remove the conflicting row on replica "${node}" (it was not written by lockstep), or set conflicts: "overwrite"`,
    });
  }
  if (e.code === '0A000' && /referenced in a foreign key/.test(e.message ?? '')) {
    return new ApplyError({
      ...base,
      kind: 'schema',
      problem: `${message} [${e.code}]`,
      fix: `on replica "${node}" a table the primary did not truncate references it: drop that foreign key there, or truncate both together on the primary (lockstep never cascades, like native apply)`,
    });
  }
  if (e.code === '42P01' || e.code === '42703' || e.code === '42804' || e.code === '22P02') {
    return new ApplyError({
      ...base,
      kind: 'schema',
      problem: `${message} [${e.code}]`,
      fix: `make the table's definition on replica "${node}" match the primary's (lockstep doctor lists the differences)`,
    });
  }
  if (e.code && VALUE_DOES_NOT_FIT.has(e.code)) {
    return new ApplyError({
      ...base,
      kind: 'schema',
      problem: `${message} [${e.code}]`,
      fix: `a column on replica "${node}" is narrower than the primary's: alter it there to the primary's type (lockstep doctor lists the differences); lockstep then catches up by itself`,
    });
  }
  return new ApplyError({
    ...base,
    kind: 'other',
    problem: `${message} [${e.code}]`,
    fix: `fix the cause on replica "${node}"; lockstep retries by itself`,
  });
}

/** A failure of the replica's connection or session rather than of the data: retried as such. */
function connectionFailure(
  e: { code?: string; message?: string },
  base: ErrorBase,
  message: string,
  url: string,
): ApplyError | null {
  if (/timeout expired|connection timeout/i.test(e.message ?? '')) {
    return new ApplyError({
      ...base,
      kind: 'unresponsive',
      table: undefined,
      problem: `the replica does not answer (${redactUrl(url)}): ${message}`,
      fix: 'check the replica server and the network to it; lockstep retries and catches up by itself',
    });
  }
  if (e.code === '25P03') {
    return new ApplyError({
      ...base,
      kind: 'unresponsive',
      table: undefined,
      problem: `the replica ended this applier's transaction, idle longer than applyTimeoutMs: this process was paused or stalled (${message})`,
      fix: 'nothing to do: lockstep reconnects, and a successor that took over meanwhile fences this one; if it recurs, find what stalls the process',
    });
  }
  if (
    !e.code ||
    e.code.startsWith('08') ||
    e.code === '57P01' ||
    e.code === '57P03' ||
    CONNECTION_LOST.test(e.message ?? '')
  ) {
    return new ApplyError({
      ...base,
      kind: 'unreachable',
      table: undefined,
      problem: `the replica is unreachable (${redactUrl(url)}): ${message}`,
      fix: 'start the replica server or fix the network; lockstep retries and catches up by itself',
    });
  }
  return null;
}

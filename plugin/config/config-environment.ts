import { jsonSyntaxProblem } from './syntax-error.js';

/**
 * Every configuration key can come from a `LOCKSTEP_*` variable; the variable
 * wins over the file. One table, so the README can list them all.
 */
export interface EnvironmentKey {
  /** Variable name. */
  readonly variable: string;
  /** Path of the key in the configuration. */
  readonly path: readonly string[];
  /** How the text is read. */
  readonly kind: 'string' | 'number' | 'boolean' | 'list' | 'replicas';
}

/** The variables lockstep reads, in documentation order. */
export const ENVIRONMENT_KEYS: readonly EnvironmentKey[] = [
  { variable: 'LOCKSTEP_PRIMARY', path: ['primary'], kind: 'string' },
  { variable: 'LOCKSTEP_REPLICAS', path: ['replicas'], kind: 'replicas' },
  { variable: 'LOCKSTEP_TABLES', path: ['tables'], kind: 'list' },
  { variable: 'LOCKSTEP_TWO_PHASE_TABLES', path: ['twoPhase', 'tables'], kind: 'list' },
  { variable: 'LOCKSTEP_TWO_PHASE_TAG', path: ['twoPhase', 'tag'], kind: 'boolean' },
  { variable: 'LOCKSTEP_TWO_PHASE_CAPTURE_DDL', path: ['twoPhase', 'captureDdl'], kind: 'boolean' },
  {
    variable: 'LOCKSTEP_TWO_PHASE_VOTE_TIMEOUT_MS',
    path: ['twoPhase', 'voteTimeoutMs'],
    kind: 'number',
  },
  {
    variable: 'LOCKSTEP_TWO_PHASE_RECOVERY_INTERVAL_MS',
    path: ['twoPhase', 'recoveryIntervalMs'],
    kind: 'number',
  },
  { variable: 'LOCKSTEP_HTTP_HOST', path: ['http', 'host'], kind: 'string' },
  { variable: 'LOCKSTEP_HTTP_PORT', path: ['http', 'port'], kind: 'number' },
  { variable: 'LOCKSTEP_CONFLICTS', path: ['conflicts'], kind: 'string' },
  { variable: 'LOCKSTEP_RESYNC', path: ['resync'], kind: 'string' },
  { variable: 'LOCKSTEP_MAX_LAG_BYTES', path: ['maxLagBytes'], kind: 'number' },
  { variable: 'LOCKSTEP_SLOT', path: ['slot'], kind: 'string' },
  { variable: 'LOCKSTEP_PUBLICATION', path: ['publication'], kind: 'string' },
  { variable: 'LOCKSTEP_BATCH_MAX_ROWS', path: ['batch', 'maxRows'], kind: 'number' },
  { variable: 'LOCKSTEP_BATCH_MAX_MS', path: ['batch', 'maxMs'], kind: 'number' },
  { variable: 'LOCKSTEP_DECODING_WORK_MEM', path: ['decodingWorkMem'], kind: 'string' },
  { variable: 'LOCKSTEP_SEQUENCE_SYNC_MS', path: ['sequenceSyncMs'], kind: 'number' },
  { variable: 'LOCKSTEP_APPLY_TIMEOUT_MS', path: ['applyTimeoutMs'], kind: 'number' },
  { variable: 'LOCKSTEP_CONTROL_TIMEOUT_MS', path: ['controlTimeoutMs'], kind: 'number' },
  { variable: 'LOCKSTEP_SIDECAR_WAIT_MS', path: ['sidecarWaitMs'], kind: 'number' },
  { variable: 'LOCKSTEP_WINDOW_CHANGES', path: ['windowChanges'], kind: 'number' },
  { variable: 'LOCKSTEP_RETRY_INITIAL_MS', path: ['retry', 'initialMs'], kind: 'number' },
  { variable: 'LOCKSTEP_RETRY_MAX_MS', path: ['retry', 'maxMs'], kind: 'number' },
  { variable: 'LOCKSTEP_BUS_URL', path: ['bus', 'url'], kind: 'string' },
  { variable: 'LOCKSTEP_BUS_STREAM', path: ['bus', 'stream'], kind: 'string' },
  { variable: 'LOCKSTEP_BUS_REPLICAS', path: ['bus', 'replicas'], kind: 'number' },
  { variable: 'LOCKSTEP_BUS_MAX_AGE', path: ['bus', 'maxAge'], kind: 'string' },
  {
    variable: 'LOCKSTEP_BUS_SERVER_SYNC_INTERVAL',
    path: ['bus', 'serverSyncInterval'],
    kind: 'string',
  },
  { variable: 'LOCKSTEP_BUS_MAX_BYTES', path: ['bus', 'maxBytes'], kind: 'string' },
  { variable: 'LOCKSTEP_BUS_SIGNING_KEY_FILE', path: ['bus', 'signingKeyFile'], kind: 'string' },
  { variable: 'LOCKSTEP_BUS_VERIFY_KEY_FILE', path: ['bus', 'verifyKeyFile'], kind: 'string' },
  { variable: 'LOCKSTEP_BUS_AGENT_HTTP_HOST', path: ['bus', 'agentHttp', 'host'], kind: 'string' },
  { variable: 'LOCKSTEP_BUS_AGENT_HTTP_PORT', path: ['bus', 'agentHttp', 'port'], kind: 'number' },
  { variable: 'LOCKSTEP_LOG_LEVEL', path: ['log', 'level'], kind: 'string' },
];

/** A variable whose text cannot be read as its kind; the message never quotes the text. */
export class EnvironmentValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvironmentValueError';
  }
}

/**
 * Where `name=url,name=url` splits: only at a comma followed by a name and
 * `=`, so a comma inside a password or a keyword DSN's value stays in it.
 */
const REPLICA_SEPARATOR = /,(?=\s*[A-Za-z][\w-]*=)/;

/**
 * Reads one variable's text as its key's kind; returns the text itself when
 * it does not parse (the schema then names it), except for JSON, which
 * throws without quoting the text.
 */
export function readEnvironmentValue(kind: EnvironmentKey['kind'], text: string): unknown {
  const trimmed = text.trim();
  switch (kind) {
    case 'string':
      return trimmed;
    case 'number':
      return trimmed !== '' && Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
    case 'boolean':
      return /^(true|1|yes|on)$/i.test(trimmed)
        ? true
        : /^(false|0|no|off)$/i.test(trimmed)
          ? false
          : trimmed;
    case 'list':
      if (trimmed.startsWith('[')) return parseJson(trimmed);
      return trimmed
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'replicas':
      // JSON, or `name=url,name=url`.
      if (trimmed.startsWith('[')) return parseJson(trimmed);
      return trimmed
        .split(REPLICA_SEPARATOR)
        .map((s) => s.trim())
        .filter(Boolean)
        .map((entry) => {
          const eq = entry.indexOf('=');
          return eq > 0 ? { name: entry.slice(0, eq).trim(), url: entry.slice(eq + 1) } : entry;
        });
  }
}

/** JSON, or an error that says where it fails and never what the text holds (it may hold a password). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new EnvironmentValueError(jsonSyntaxProblem(error, text));
  }
}

import { z } from 'zod';
import { ConnectionStringError, parseConnectionString } from '../ports/connection-string.js';

/** A node's connection: a postgres:// URL or a libpq keyword DSN, with parameters libpq knows. */
const connectionString = z.string().superRefine((text, ctx) => {
  try {
    parseConnectionString(text);
  } catch (error) {
    if (!(error instanceof ConnectionStringError)) throw error;
    const message = /^a postgres/.test(error.message)
      ? error.message
      : `a connection string lockstep can use (${error.message})`;
    ctx.addIssue({ code: 'custom', message });
  }
});

/** A file holding only the node's password (a mounted secret), read at start-up. */
const passwordFile = z.string().min(1, 'the path of a file holding the password');

const nodeName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,30}$/, '1-31 characters from [a-z0-9_-], starting with a letter')
  .refine((name) => name !== 'primary' && name !== 'all', 'a name other than "primary" and "all"');

const objectName = z.string().regex(/^[a-z_][a-z0-9_]{0,40}$/, 'a lower-case name from [a-z0-9_]');

/** An address to bind; never empty, which Node reads as every interface. */
const httpHost = z
  .string()
  .min(
    1,
    'an address to bind such as "127.0.0.1" (empty would bind every interface: write "0.0.0.0" or "::" for that)',
  )
  .default('127.0.0.1');

/** A NATS server URL (or several, comma-separated); it may carry a user and password or a token. */
const busUrl = z
  .string()
  .regex(
    /^(nats|tls):\/\/[^\s,]+(\s*,\s*(nats|tls):\/\/[^\s,]+)*$/,
    'nats://host:4222 (or tls://, several comma-separated)',
  )
  // The client parses each one as a URL: one it cannot (a port past 65535) is refused here, not retried for ever.
  .refine(
    (text) => text.split(',').every((url) => URL.canParse(url.trim())),
    'URLs with a valid host and port (1-65535)',
  );

/** The packet bus (NATS JetStream); defaults suit one server, a 3-node cluster sets `replicas: 3`. */
const busSchema = z
  .object({
    /** Where the NATS servers listen. */
    url: busUrl,
    /** JetStream stream name; `LOCKSTEP_<SLOT>` when not given (see busStreamName). */
    stream: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, '1-64 characters from [A-Za-z0-9_-]')
      .optional(),
    /** How many servers keep each packet (JetStream's replication factor, 1-5). */
    replicas: z.number().int().min(1).max(5).default(1),
    /** How long the stream keeps a packet: a replica down longer needs a resync. */
    maxAge: z
      .string()
      .regex(/^\d+\s*(s|m|h|d)$/, 'a duration such as "7d", "12h", "30m"')
      .default('7d'),
    /**
     * How long the NATS servers may hold an acknowledged packet before they
     * write it to disk (their `jetstream.sync_interval`): the slot is confirmed
     * that long after JetStream's ack. `always` (or `0s`) for servers run with
     * `sync_interval: always` (nats-server 2.10 and later).
     */
    serverSyncInterval: z
      .string()
      .regex(/^(always|\d+\s*(s|m|h))$/, 'a duration such as "2m", "30s", or "always"')
      .default('2m'),
    /** Most bytes the stream keeps; the oldest packets go first. */
    maxBytes: z
      .string()
      .regex(/^\d+\s*(MB|GB|TB)$/, 'a size such as "10GB"')
      .default('10GB'),
    /** PEM Ed25519 private key `lockstep run` (and migrate, exec) signs packets and requests with. */
    signingKeyFile: z.string().min(1).optional(),
    /** PEM public key `lockstep agent` verifies them with (else derived from signingKeyFile). */
    verifyKeyFile: z.string().min(1).optional(),
    /** `lockstep agent`'s /healthz, /readyz, /metrics and /status; off unless a port is set. */
    agentHttp: z
      .object({
        host: httpHost,
        /** Port; 0 leaves the endpoints off. */
        port: z.number().int().min(0).max(65535).default(0),
      })
      .strict()
      .optional(),
  })
  .strict()
  // Nothing from the bus is applied unless lockstep signed it: a bus without keys is refused.
  .refine((bus) => bus.signingKeyFile || bus.verifyKeyFile, {
    message:
      'bus.signingKeyFile (lockstep run) or bus.verifyKeyFile (lockstep agent): packets and requests on the bus are signed; make the keys with: openssl genpkey -algorithm ed25519 -out bus-signing.pem && openssl pkey -in bus-signing.pem -pubout -out bus-verify.pem',
    path: ['signingKeyFile'],
  });

/** lockstep's configuration (DESIGN.md, "Configuration file"); every key also comes from `LOCKSTEP_*`. */
export const configSchema = z
  .object({
    /** The primary: its connection string, or `{ url, passwordFile }`. */
    primary: z.union(
      [
        connectionString,
        z.object({ url: connectionString, passwordFile: passwordFile.optional() }).strict(),
      ],
      {
        error: 'a connection string (URL or keyword DSN), or { url, passwordFile }',
      },
    ),
    /** Replicas, each with a unique name and a connection string (and maybe a passwordFile). */
    replicas: z
      .array(
        z
          .object({ name: nodeName, url: connectionString, passwordFile: passwordFile.optional() })
          .strict(),
      )
      .min(1, 'at least one replica'),
    /** Replicated tables, as `schema.table` patterns with `*` wildcards. */
    tables: z.array(z.string().min(1)).min(1).default(['public.*']),
    /** Two-phase delivery (critical writes, migrations, captured DDL). */
    twoPhase: z
      .object({
        /** Tables whose writes are critical (patterns like `billing.*`). */
        tables: z.array(z.string().min(1)).default([]),
        /**
         * Honour `pg_logical_emit_message(true, 'lockstep.two_phase', '')` tags
         * (unset: honoured).
         */
        tag: z.boolean().optional(),
        /** Capture DDL on the primary with an event trigger. */
        captureDdl: z.boolean().default(false),
        /** How long a replica may take to vote (ms). */
        voteTimeoutMs: z.number().int().positive().default(5000),
        /** How often prepared transactions left by a crash are looked for and finished (ms). */
        recoveryIntervalMs: z.number().int().positive().default(30_000),
      })
      .strict()
      .prefault({}),
    /** Health, readiness, metrics and status endpoints. */
    http: z
      .object({
        /** Address to bind; loopback unless deliberately opened. */
        host: httpHost,
        /** Port; 0 disables the endpoints. */
        port: z.number().int().min(0).max(65535).default(9187),
      })
      .strict()
      .prefault({}),
    /** What a replica does when applying conflicts with its rows: stop, or make the primary's row win. */
    conflicts: z.enum(['halt', 'overwrite']).default('halt'),
    /** Resync a stale replica by itself (`auto`) or wait for an operator (`manual`). */
    resync: z.enum(['manual', 'auto']).default('manual'),
    /** A replica further behind than this many WAL bytes is marked stale and stops holding WAL. */
    maxLagBytes: z
      .number()
      .int()
      .positive()
      .default(1024 ** 3),
    /** Name of the replication slot (also the stream's name in gids and control tables). */
    slot: objectName.default('lockstep'),
    /** Name of the publication. */
    publication: objectName.default('lockstep'),
    /** Batching of consecutive one-phase packets into one replica transaction. */
    batch: z
      .object({
        /** Most row changes in one replica transaction. */
        maxRows: z.number().int().positive().default(10_000),
        /** Longest a batch waits for more packets (ms). */
        maxMs: z.number().int().nonnegative().default(20),
      })
      .strict()
      .prefault({}),
    /**
     * logical_decoding_work_mem for lockstep's own replication session on the
     * primary: how much of one transaction the walsender decodes in memory
     * before spilling it to disk (the server's default is 64MB).
     */
    decodingWorkMem: z
      .string()
      .regex(/^\d+\s*(kB|MB|GB)$/, 'a size such as "256MB"')
      .default('256MB'),
    /** How often sequence values of replicated tables are copied to the replicas (ms; 0: only at attach). */
    sequenceSyncMs: z.number().int().nonnegative().default(10_000),
    /** Longest one step of applying to a replica may take before the replica counts as unresponsive (ms). */
    applyTimeoutMs: z.number().int().positive().default(30_000),
    /**
     * Longest one query on a control connection may take (decisions, status,
     * locks, phase two, control schema, sequences) before its node counts as
     * not answering (ms). Raise it for a slow link or a long COMMIT PREPARED.
     */
    controlTimeoutMs: z
      .number()
      .int()
      .min(1000, 'at least 1000 (ms): a shorter deadline fails healthy nodes')
      .default(30_000),
    /** How long attach waits for a running sidecar to take a new replica into its configuration (ms). */
    sidecarWaitMs: z
      .number()
      .int()
      .min(1000, 'at least 1000 (ms): the sidecar reloads within seconds')
      .default(60_000),
    /** Most row changes kept in memory to serve deltas to lagging replicas. */
    windowChanges: z.number().int().positive().default(50_000),
    /** Backoff of a halted replica's retries (ms). */
    retry: z
      .object({
        initialMs: z.number().int().positive().default(500),
        maxMs: z.number().int().positive().default(30_000),
      })
      .strict()
      .prefault({}),
    /** The packet bus: packets go to a NATS JetStream stream, agents apply them (DESIGN.md, "Scale-out"). */
    bus: busSchema.optional(),
    /** Logging. */
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.replicas.forEach((replica, i) => {
      if (seen.has(replica.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['replicas', i, 'name'],
          message: 'a name used by no other replica',
        });
      }
      seen.add(replica.name);
    });
  })
  // Unset, tags are honoured, so a tagged transaction is never delivered one-phase unasked.
  .transform((config) => ({
    ...config,
    twoPhase: { ...config.twoPhase, tag: config.twoPhase.tag ?? true },
  }));

/** A configuration as validated, before each node's connection is resolved (resolveNodes). */
export type ParsedConfig = z.infer<typeof configSchema>;

/** One replica of the configuration, its `url` resolved (see resolveConnection). */
export interface ReplicaConfig {
  readonly name: string;
  /** The replica's connection, resolved: a canonical URL that may carry its password. */
  readonly url: string;
}

/**
 * A validated configuration, with defaults filled in and every node's
 * connection resolved once (PG* defaults, passwordFile, ~/.pgpass) into the
 * URL every adapter connects with.
 */
export type LockstepConfig = Omit<ParsedConfig, 'primary' | 'replicas'> & {
  /** The primary's connection, resolved like a replica's `url`. */
  readonly primary: string;
  readonly replicas: ReplicaConfig[];
};

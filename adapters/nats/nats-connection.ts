import {
  AuthorizationError,
  connect,
  type NatsConnection,
  UserAuthenticationExpiredError,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';

/**
 * A server is pinged every PING_MS; with MAX_PINGS_OUT unanswered the
 * connection is dropped and made to another server. A hung server (paused,
 * cut off) accepts TCP and answers nothing: it is left 10–15 s after its last
 * answer, not the 30–40 s of the client's defaults.
 */
const PING_MS = 5_000;
const MAX_PINGS_OUT = 2;
/** How long a round trip to the server may take before the connection counts as unresponsive (ms). */
const ROUND_TRIP_MS = 3_000;
/**
 * How long a client may be cut off while it leaves a hung server: its pings
 * run out within PING_MS · (MAX_PINGS_OUT + 1), then it connects and
 * subscribes anew. A peer silent for less may be alive behind such a server.
 */
export const BUS_FAILOVER_MS = PING_MS * (MAX_PINGS_OUT + 1) + 2 * ROUND_TRIP_MS;

/** The node name errors about the bus carry. */
export const BUS_NODE = 'bus';

/** Servers without credentials, and the credentials the URLs carried (user and password, or a token). */
export function splitCredentials(servers: readonly string[]): {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
} {
  let user: string | undefined;
  let pass: string | undefined;
  const bare = servers.map((server) => {
    const url = new URL(server);
    if (url.username && user === undefined) {
      user = decodeURIComponent(url.username);
      pass = url.password ? decodeURIComponent(url.password) : undefined;
    }
    return `${url.protocol}//${url.host}`;
  });
  if (user === undefined) return { servers: bare };
  // `nats://TOKEN@host`: a name without a password is a token.
  return pass === undefined ? { servers: bare, token: user } : { servers: bare, user, pass };
}

/** How a long-running process follows its connection: what it logs, and what it does should the connection end. */
export interface BusWatch {
  readonly log: Logger;
  /** The client gave the connection up for good (closed with an error): the process cannot go on with it. */
  lost(connection: string, error: Error): void;
}

/**
 * Connects to the bus. It reconnects by itself for ever once connected (a
 * node restarting is routine), even while the servers refuse its
 * credentials (a server restarted before its accounts are loaded, a
 * password rotated on the server first): the client's default gives up
 * after two refusals in a row and leaves a closed connection behind. Each
 * connection attempt, the first one and every reconnect, is bounded by
 * `timeoutMs`. With `watch`, refusals are logged while they last.
 * Errors name the servers without their credentials.
 */
export async function connectBus(
  settings: Pick<BusSettings, 'servers'>,
  name: string,
  options: { timeoutMs?: number; watch?: BusWatch } = {},
): Promise<NatsConnection> {
  const { servers, ...auth } = splitCredentials(settings.servers);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      ...auth,
      name,
      timeout: options.timeoutMs ?? 10_000,
      reconnect: true,
      maxReconnectAttempts: -1,
      ignoreAuthErrorAbort: true,
      reconnectTimeWait: 500,
      pingInterval: PING_MS,
      maxPingOut: MAX_PINGS_OUT,
    });
  } catch (error) {
    throw new LockstepError({
      node: BUS_NODE,
      problem: `cannot connect to the bus at ${servers.join(',')}: ${(error as Error).message}`,
      fix: 'check bus.url (nats://host:4222) and that the NATS servers run with JetStream',
      setting: 'connection',
      cause: error,
    });
  }
  if (options.watch) watchBus(nc, name, servers, options.watch);
  return nc;
}

/** How often a refusal of the credentials that goes on is logged again (ms). */
const REFUSED_LOG_EVERY_MS = 30_000;

/**
 * Logs the servers refusing the credentials (a warning, event
 * `bus-unauthorized`, again every REFUSED_LOG_EVERY_MS while it lasts) and
 * their accepting them again; tells `watch.lost` of a connection the client
 * closed by itself. A close lockstep asks for resolves `closed()` without an
 * error. Fields name the servers without credentials.
 */
function watchBus(
  nc: NatsConnection,
  connection: string,
  servers: readonly string[],
  watch: BusWatch,
): void {
  const { log } = watch;
  let refusedSince: number | null = null;
  let loggedAt = 0;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'error' && refusesCredentials(status.error)) {
        const now = Date.now();
        refusedSince ??= now;
        if (now - loggedAt < REFUSED_LOG_EVERY_MS) continue;
        loggedAt = now;
        log.warn(
          {
            node: BUS_NODE,
            event: 'bus-unauthorized',
            connection,
            servers: servers.join(','),
            err: status.error.message,
            refusedMs: now - refusedSince,
            fix: "check the user and password (or token) in bus.url against the NATS servers' authorization; lockstep retries every 500 ms",
          },
          'the bus refuses the credentials: retrying',
        );
      } else if (status.type === 'reconnect' && refusedSince !== null) {
        log.info(
          {
            node: BUS_NODE,
            event: 'bus-authorized',
            connection,
            refusedMs: Date.now() - refusedSince,
          },
          'the bus accepts the credentials again',
        );
        refusedSince = null;
        loggedAt = 0;
      }
    }
  })().catch(() => undefined);
  void nc.closed().then((error) => {
    if (error) watch.lost(connection, error);
  });
}

function refusesCredentials(error: Error): boolean {
  return error instanceof AuthorizationError || error instanceof UserAuthenticationExpiredError;
}

/**
 * Drops the connection when its server does not answer a round trip within
 * ROUND_TRIP_MS, so the client connects to the next server now rather than
 * once its pings ran out. For a caller whose request timed out: true when
 * the connection was dropped.
 */
export async function dropIfUnresponsive(nc: NatsConnection): Promise<boolean> {
  if (nc.isClosed() || nc.isDraining()) return false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ROUND_TRIP_MS);
  });
  const answered = await Promise.race([
    nc.flush().then(
      () => true,
      () => true,
    ),
    late,
  ]);
  clearTimeout(timer);
  if (answered) return false;
  await nc.reconnect().catch(() => undefined);
  return true;
}

/** Drains the connection, but closes it at once should a hung server not let the drain end. */
export async function closeBus(nc: NatsConnection): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ROUND_TRIP_MS);
  });
  await Promise.race([nc.drain().catch(() => undefined), late]);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}

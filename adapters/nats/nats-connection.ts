import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';

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

/**
 * Connects to the bus. It reconnects by itself for ever once connected (a
 * node restarting is routine); the first connection is bounded by `timeoutMs`.
 * Errors name the servers without their credentials.
 */
export async function connectBus(
  settings: Pick<BusSettings, 'servers'>,
  name: string,
  timeoutMs = 10_000,
): Promise<NatsConnection> {
  const { servers, ...auth } = splitCredentials(settings.servers);
  try {
    return await connect({
      servers,
      ...auth,
      name,
      timeout: timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      pingInterval: 10_000,
      maxPingOut: 3,
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
}

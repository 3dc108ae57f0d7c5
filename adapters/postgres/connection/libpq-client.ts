import type { Socket } from 'node:net';
import pg from 'pg';
import { stampFailedNode } from '../../../plugin/ports/failed-node.js';
import type { OptionalTls } from './tls-options.js';

/** A `pg` client configuration, with how optional TLS is (libpq's sslmode prefer / allow). */
export interface LibpqClientConfig extends pg.ClientConfig {
  readonly optionalTls?: OptionalTls;
  /** The node a failed query's error is stamped with (see stampFailedNode). */
  readonly node?: string;
}

/** The parts of pg's connection used here (not in @types/pg; pg 8.x). */
interface PgConnection {
  readonly stream: Socket;
  ssl: unknown;
  attachListeners(stream: Socket): void;
  emit(event: 'sslconnect'): boolean;
}

/** Servers found to refuse plain connections (`allow`), by host, port, user and database. */
const plainRefused = new Map<string, boolean>();

/**
 * A `pg` client that treats optional TLS as libpq does, which pg cannot:
 * - prefer: asks for TLS; a server that answers "no TLS" (`N`) gets the
 *   startup message on the same connection, unencrypted (pg would fail);
 * - allow: connects without TLS, and with TLS where the server refuses that.
 *   libpq retries a refused plain connection with TLS; a pg client cannot
 *   connect twice, so a first plain connection to the server finds out, and
 *   the answer is kept for the process.
 * Every other sslmode is plain pg.
 */
export class LibpqClient extends pg.Client {
  private readonly optionalTls: OptionalTls | undefined;
  private readonly config: LibpqClientConfig;

  constructor(config: LibpqClientConfig = {}) {
    super(config);
    this.config = config;
    this.optionalTls = config.optionalTls;
    if (config.node) nameFailures(this, config.node);
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
  override connect(
    callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void),
  ): Promise<pg.Client> | undefined {
    const ready = this.settleTls();
    if (!callback) return ready.then(() => super.connect());
    ready.then(
      () => super.connect(callback),
      (error: Error) => (callback as (err: Error) => void)(error),
    );
    return undefined;
  }

  private async settleTls(): Promise<void> {
    if (this.optionalTls === 'prefer') this.goOnWithoutTlsIfRefused();
    else if (this.optionalTls === 'allow' && !(await this.refusesPlain())) this.withoutTls();
  }

  private withoutTls(): void {
    const connection = this.connection as unknown as PgConnection;
    connection.ssl = false;
    this.ssl = false;
    (this as unknown as { connectionParameters: { ssl: unknown } }).connectionParameters.ssl =
      false;
  }

  /**
   * pg waits for the answer to its TLS request with a one-time 'data'
   * listener that fails on `N`. The first chunk the socket emits is that
   * answer: on `N` it is taken here instead, and pg carries on as if TLS had
   * never been asked for (its parser on the plain socket, then startup).
   */
  private goOnWithoutTlsIfRefused(): void {
    const connection = this.connection as unknown as PgConnection;
    const socket = connection.stream;
    const original = socket.emit;
    const emit = original as (this: Socket, event: string | symbol, ...args: unknown[]) => boolean;
    const refused = () => this.withoutTls();
    socket.emit = function (this: Socket, event: string | symbol, ...args: unknown[]) {
      if (event !== 'data') return emit.call(this, event, ...args);
      socket.emit = original;
      const chunk = args[0] as Buffer;
      if (chunk.length !== 1 || chunk[0] !== 0x4e /* N */) return emit.call(this, event, ...args);
      socket.removeAllListeners('data');
      refused();
      connection.attachListeners(socket);
      connection.emit('sslconnect');
      return true;
    } as typeof socket.emit;
  }

  /** Whether the server refuses this connection without TLS (any server error counts, as in libpq). */
  private async refusesPlain(): Promise<boolean> {
    const key = [this.host, this.port, this.user, this.database].join('\0');
    const known = plainRefused.get(key);
    if (known !== undefined) return known;
    const { optionalTls: _optional, ...config } = this.config;
    const probe = new pg.Client({ ...config, ssl: false });
    probe.on('error', () => undefined);
    let refused: boolean;
    try {
      await probe.connect();
      refused = false;
    } catch (error) {
      // A SQLSTATE means the server answered and said no; anything else (no route, timeout) is the caller's.
      if (!/^[0-9A-Z]{5}$/.test(String((error as { code?: unknown }).code))) throw error;
      refused = true;
    } finally {
      await probe.end().catch(() => undefined);
    }
    plainRefused.set(key, refused);
    return refused;
  }
}

/**
 * Stamps the node on the error of every query `client` runs as a promise
 * (pg's overloads with a callback or a submittable are left as they are):
 * an error no step wrapped can still name its node.
 */
function nameFailures(client: pg.Client, node: string): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  Object.defineProperty(client, 'query', {
    writable: true,
    configurable: true,
    value: (...args: unknown[]) => {
      const result = query(...args);
      if (!(result instanceof Promise)) return result;
      return result.catch((error: unknown) => {
        throw stampFailedNode(error, node);
      });
    },
  });
}

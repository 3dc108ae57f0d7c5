import type { Logger } from 'pino';
import { redactBusUrl } from '../config/bus-settings.js';

/**
 * How a long-running process (`lockstep run` with `bus`, `lockstep agent`)
 * follows its bus connections: refusals are logged while they last, and a
 * connection the client gave up (it reconnects no more) ends the process
 * with exit 1. Nothing sent or received on it would work again: running on,
 * connected to nothing and reported healthy, helps nobody; a supervisor
 * restarting the process connects anew.
 */
export function exitOnBusLost(log: Logger): {
  log: Logger;
  lost(connection: string, error: Error): void;
} {
  return {
    log,
    lost(connection, error) {
      log.fatal(
        {
          node: 'bus',
          event: 'bus-lost',
          connection,
          err: redactBusUrl(error.message),
          fix: 'check that the NATS servers run and accept the credentials in bus.url; the supervisor restarts lockstep',
        },
        'the bus connection closed for good: exiting',
      );
      process.exit(1);
    },
  };
}

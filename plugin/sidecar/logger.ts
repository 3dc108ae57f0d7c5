import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

/** pino-pretty, loaded only for a terminal: a sidecar under a supervisor starts without it. */
const pretty = (): typeof import('pino-pretty') => createRequire(import.meta.url)('pino-pretty');

/**
 * JSON lines with pino — pretty, coloured lines when writing to a terminal;
 * credentials never reach it (every URL that is logged goes through
 * redactUrl, and errors are scrubbed where they are made).
 */
export function createLogger(
  level: string,
  destination: NodeJS.WritableStream = process.stderr,
): Logger {
  const options = { level, base: { app: 'lockstep' }, timestamp: pino.stdTimeFunctions.isoTime };
  if ((destination as NodeJS.WriteStream).isTTY) {
    return pino(
      options,
      pretty()({
        destination: destination as NodeJS.WriteStream,
        sync: true,
        ignore: 'app,pid,hostname',
      }),
    );
  }
  return pino(options, destination as pino.DestinationStream);
}

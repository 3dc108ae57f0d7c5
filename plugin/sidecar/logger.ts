import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

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
      pretty({
        destination: destination as NodeJS.WriteStream,
        sync: true,
        ignore: 'app,pid,hostname',
      }),
    );
  }
  return pino(options, destination as pino.DestinationStream);
}

import pino, { type Logger } from 'pino';

/**
 * JSON lines with pino; credentials never reach it (every URL that is logged
 * goes through redactUrl, and errors are scrubbed where they are made).
 */
export function createLogger(
  level: string,
  destination: NodeJS.WritableStream = process.stderr,
): Logger {
  return pino(
    { level, base: { app: 'lockstep' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination as pino.DestinationStream,
  );
}

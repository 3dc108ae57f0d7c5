import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

/** The part of pino-pretty's factory lockstep uses (typed here: pino-pretty is optional). */
type PrettyFactory = (options: {
  destination: NodeJS.WriteStream;
  sync: boolean;
  ignore: string;
}) => pino.DestinationStream;

/**
 * pino-pretty, loaded only for a terminal: a sidecar under a supervisor starts
 * without it, and an install without optional dependencies (the image) has
 * none — JSON lines then, in a terminal too.
 */
function pretty(): PrettyFactory | null {
  try {
    return createRequire(import.meta.url)('pino-pretty') as PrettyFactory;
  } catch (error) {
    if ((error as { code?: string }).code === 'MODULE_NOT_FOUND') return null;
    throw error;
  }
}

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
  const prettify = (destination as NodeJS.WriteStream).isTTY ? pretty() : null;
  if (prettify) {
    return pino(
      options,
      prettify({
        destination: destination as NodeJS.WriteStream,
        sync: true,
        ignore: 'app,pid,hostname',
      }),
    );
  }
  return pino(options, destination as pino.DestinationStream);
}

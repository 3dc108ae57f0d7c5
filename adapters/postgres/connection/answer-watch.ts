import type pg from 'pg';
import { probeBackend } from './backend-probe.js';
import { dropClient } from './node-connection.js';

/** A watch on a statement; `frozen` rejects once the server stopped answering. */
export interface AnswerWatch {
  readonly frozen: Promise<never>;
  stop(): void;
}

/** When a watch looks. */
export interface AnswerWatchOptions {
  /** Whether the client waits on a statement now: only then is the server asked (default: always). */
  readonly busy?: () => boolean;
}

/**
 * Watches a statement that may rightly wait long (on other transactions):
 * every `boundMs` a fresh session asks the server about the client's
 * backend. Waiting or working, it goes on; a server that does not answer
 * two looks in a row (a frozen host, not one slow to accept a connection
 * once) has the client's socket dropped and `frozen` rejected with
 * `error()`, so nothing waits on it for ever.
 */
export function watchAnswering(
  url: string,
  client: pg.Client,
  boundMs: number,
  error: () => Error,
  options: AnswerWatchOptions = {},
): AnswerWatch {
  const busy = options.busy ?? (() => true);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let fail: (reason: Error) => void = () => undefined;
  const frozen = new Promise<never>((_, reject) => {
    fail = reject;
  });
  frozen.catch(() => undefined);
  const pid = () => (client as unknown as { processID?: number }).processID;
  let misses = 0;
  const look = async () => {
    // An idle session waits on nothing: a freeze then matters once it sends a statement.
    // A probe that cannot even be set up (a TLS file gone) tells nothing: asked again later.
    const reason = busy()
      ? await probeBackend({ url, pid: pid(), boundMs }).catch(() => null)
      : null;
    if (stopped) return;
    // A statement that ended while the server was asked got its answer.
    misses = reason === 'did not answer' && busy() ? misses + 1 : 0;
    if (misses >= 2) {
      dropClient(client);
      fail(error());
      return;
    }
    timer = setTimeout(look, boundMs);
  };
  timer = setTimeout(look, boundMs);
  return {
    frozen,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

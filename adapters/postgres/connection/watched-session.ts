import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { watchAnswering } from './answer-watch.js';
import { connectNode, dropClient, unreachable } from './node-connection.js';
import { endWhenDropped } from './session-bounds.js';

/** The error of a watched session's statement once its server stopped answering. */
function unanswered(node: string, boundMs: number): LockstepError {
  const role = node === 'primary' ? 'primary' : 'replica';
  return new LockstepError({
    node,
    // Unreachable (exit code 3), as a node that refuses connections.
    setting: 'connection',
    problem: `a statement of lockstep's session failed: the ${role} did not answer for ${boundMs} ms (applyTimeoutMs)`,
    fix: `check that the ${role}'s server runs and answers (not stopped, not overloaded), then run the command again (attach resumes)`,
  });
}

/**
 * Opens a session whose statements have no deadline (they may rightly wait
 * on other transactions' locks) yet never wait on a frozen server: while one
 * runs, a fresh session asks the server about it every `boundMs`
 * (watchAnswering). A server that does not answer has this session dropped;
 * the statement running then and every later one fail with a LockstepError
 * naming the node. From PostgreSQL 14 the dropped backend ends too, instead
 * of going on once the server thaws.
 */
export async function connectWatched(
  node: string,
  url: string,
  applicationName: string,
  boundMs: number,
): Promise<pg.Client> {
  const client = await connectNode(node, url, applicationName);
  watchStatements(client, url, boundMs, () => unanswered(node, boundMs));
  try {
    // Watched already: a server frozen right after the connection does not hold it.
    await client.query(`SELECT ${endWhenDropped(false)}`);
    return client;
  } catch (error) {
    dropClient(client);
    throw error instanceof LockstepError ? error : unreachable(node, url, error);
  }
}

/** Races each statement of `client` with a watch that runs while one does; ending the client stops it. */
function watchStatements(client: pg.Client, url: string, boundMs: number, error: () => Error) {
  let running = 0;
  const watch = watchAnswering(url, client, boundMs, error, { busy: () => running > 0 });
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const result = query(...args);
    // Submittables (cursors, copy streams) and callbacks are left as they are.
    if (!(result instanceof Promise)) return result;
    running++;
    // The watch's error first: a statement sent after the drop fails with it, not pg's own.
    return Promise.race([watch.frozen, result]).finally(() => {
      running--;
    });
  }) as typeof client.query;
  const end = client.end.bind(client) as (...args: unknown[]) => unknown;
  client.end = ((...args: unknown[]) => {
    watch.stop();
    return end(...args);
  }) as typeof client.end;
}

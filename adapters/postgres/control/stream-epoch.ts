import { connectBounded, endClient, lockWaitWithin } from '../connection/node-connection.js';

/**
 * The stream's activation epoch, as the coordinator last raised it (0 when
 * not attached), read on a session whose each query has `deadlineMs` (a
 * lock wait ends a margin before it): a primary that does not answer fails it.
 */
export async function readStreamEpoch(
  url: string,
  stream: string,
  deadlineMs: number,
): Promise<number> {
  const client = await connectBounded(
    'primary',
    url,
    'lockstep-migrate-epoch',
    deadlineMs,
    lockWaitWithin(deadlineMs),
  );
  try {
    const { rows } = await client.query<{ epoch: string }>(
      'SELECT epoch::text AS epoch FROM lockstep.streams WHERE stream = $1',
      [stream],
    );
    return Number(rows[0]?.epoch ?? 0);
  } finally {
    await endClient(client);
  }
}

import { connectNode } from '../connection/node-connection.js';

/** The stream's activation epoch, as the coordinator last raised it (0 when not attached). */
export async function readStreamEpoch(url: string, stream: string): Promise<number> {
  const client = await connectNode('primary', url, 'lockstep-migrate-epoch');
  try {
    const { rows } = await client.query<{ epoch: string }>(
      'SELECT epoch::text AS epoch FROM lockstep.streams WHERE stream = $1',
      [stream],
    );
    return Number(rows[0]?.epoch ?? 0);
  } finally {
    await client.end().catch(() => undefined);
  }
}

import type { PhaseTwoNode } from '../ports/phase-two-node.js';

/**
 * lockstep gids prepared on the nodes that could be listed, but `current` (the
 * round in flight): how many, and the oldest's age (s). A node that cannot be
 * listed (down, its agent silent) leaves the others' count standing: hiding
 * it would silence the in-doubt alert just when gids stay prepared. Fails only
 * when no node could be listed.
 */
export async function countInDoubt(
  nodes: Iterable<PhaseTwoNode>,
  stream: string,
  current: string | undefined,
): Promise<{ count: number; oldestSeconds: number }> {
  const listed = await Promise.allSettled([...nodes].map((node) => node.list(stream)));
  const lists = listed.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
  if (lists.length === 0 && listed[0]?.status === 'rejected') throw listed[0].reason;
  let count = 0;
  let oldestSeconds = 0;
  for (const prepared of lists.flat()) {
    if (prepared.gid === current) continue;
    count++;
    oldestSeconds = Math.max(oldestSeconds, prepared.ageSeconds);
  }
  return { count, oldestSeconds };
}
